"""A refused start never writes into an existing run folder: a second run into a finished
run's folder, ``resume=`` of a finished run, an eval or a mine into it, a sweep into an earlier
sweep's folder, a resume whose configuration differs. Each exits 2 with one paragraph, and
every file of the existing run is byte-identical afterwards (nothing added, nothing changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hnm.cli import main
from tests.test_resume_untrusted import checksums

SMOKE = ["experiment=smoke", "logger=none"]


def finished_run(folder: Path) -> Path:
    """The files a finished ``hnm train experiment=smoke logger=none`` leaves (stubs)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "model").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text(json.dumps(SMOKE))
    (folder / ".hydra" / "config.yaml").write_text("seed: 42\n")
    (folder / ".hydra" / "hydra.yaml").write_text("hydra: {}\n")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint")
    (folder / "model" / "model.safetensors").write_bytes(b"weights")
    (folder / "metrics.json").write_text(json.dumps({"test/stdlib_code/ndcg@10": 0.5}))
    (folder / "status.json").write_text(json.dumps({"state": "finished"}))
    (folder / "train.log").write_text("the run's log\n")
    return folder


def refused(argv: list[str], folder: Path, needle: str, capsys) -> str:
    before = checksums(folder)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err and "hnm: error: " in err and needle in err, err
    assert checksums(folder) == before  # no file changed, none added
    return err


def test_a_second_run_into_a_finished_folder(tmp_path: Path, capsys) -> None:
    folder = finished_run(tmp_path / "run")
    refused(["train", *SMOKE, f"hydra.run.dir={folder}"], folder, "already holds a run",
            capsys)


def test_resume_of_a_finished_run(tmp_path: Path, capsys) -> None:
    folder = finished_run(tmp_path / "run")
    err = refused(["train", f"resume={folder}"], folder, "that run finished", capsys)
    assert "hydra.run.dir=NEW_FOLDER" in err
    refused(["train", f"resume={folder / 'checkpoints' / 'last.ckpt'}"], folder,
            "that run finished", capsys)


@pytest.mark.parametrize("command", [["eval", "model=bm25"], ["mine", *SMOKE, "miner=bm25"]])
def test_eval_and_mine_into_a_finished_folder(tmp_path: Path, capsys, command) -> None:
    folder = finished_run(tmp_path / "run")
    refused([*command, f"hydra.run.dir={folder}"], folder, "already holds a run", capsys)


def test_an_interrupted_run_is_pointed_to_resume(tmp_path: Path, capsys) -> None:
    folder = finished_run(tmp_path / "run")
    (folder / "status.json").write_text(json.dumps({"state": "interrupted"}))
    (folder / "metrics.json").unlink()
    refused(["train", *SMOKE, f"hydra.run.dir={folder}"], folder,
            f"to continue that run: hnm train resume={folder}", capsys)


def test_a_sweep_into_an_earlier_sweep(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    finished_run(sweep / "0")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    refused(["train", "-m", *SMOKE, "seed=1,2", f"hydra.sweep.dir={sweep}"], sweep,
            "already holds a sweep", capsys)


def test_a_resume_with_another_configuration_leaves_the_run_as_it_was(tmp_path: Path,
                                                                       capsys) -> None:
    """The configuration check needs the checkpoint, read once Hydra has started: Hydra then
    writes no ``.hydra/`` into the folder, opens no log file, and the refusal marks nothing."""
    import torch

    folder = finished_run(tmp_path / "run")
    (folder / "status.json").write_text(json.dumps({"state": "interrupted", "step": 4}))
    (folder / "metrics.json").unlink()
    (folder / "train.log").unlink()  # a log file must not appear either
    torch.save({"state_dict": {}, "hnm": {"config": {"seed": 7}}},
               folder / "checkpoints" / "last.ckpt")
    refused(["train", f"resume={folder}", "module.lr=0.5"], folder,
            "written by a run with another configuration", capsys)


def test_a_resume_whose_checkpoint_names_a_foreign_class(tmp_path: Path, capsys) -> None:
    """The parts' state may only rebuild hnm's classes: checked before the resume writes."""
    import torch

    folder = finished_run(tmp_path / "run")
    (folder / "status.json").write_text(json.dumps({"state": "interrupted", "step": 4}))
    (folder / "metrics.json").unlink()
    foreign = {"__object__": "hnm.encoders.factory:torch.nn.Module", "attrs": {}}
    torch.save({"state_dict": {}, "hnm": {"config": {}, "parts": {"sampler": {"x": foreign}}}},
               folder / "checkpoints" / "last.ckpt")
    refused(["train", f"resume={folder}"], folder, "not a class defined in hnm", capsys)


def test_a_start_refused_at_build_does_not_block_the_corrected_command(tmp_path: Path,
                                                                       capsys) -> None:
    """The user mistypes, hnm refuses after Hydra made the folder (a refusal at build time),
    the user corrects the command and runs it into the same folder: it starts, and the refused
    start's files are kept, byte for byte, in a ``refused_start_*`` folder beside the run."""
    folder = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["train", *SMOKE, "+miner=adore", f"hydra.run.dir={folder}"])
    assert stop.value.code == 2
    assert json.loads((folder / "status.json").read_text())["user_error"] is True
    before = checksums(folder)
    capsys.readouterr()
    main(["train", *SMOKE, f"hydra.run.dir={folder}"])
    err = capsys.readouterr().err
    kept = sorted(folder.glob("refused_start_*"))
    assert len(kept) == 1, sorted(p.name for p in folder.iterdir())
    assert checksums(kept[0]) == before  # the refused start's files, unchanged
    assert f"moved to {kept[0]}" in err, err
    assert json.loads((folder / "status.json").read_text())["state"] == "finished"
    assert (folder / "metrics.json").is_file()


@pytest.mark.parametrize("made", ["metrics.json", "checkpoints", "model"])
def test_a_failed_run_that_made_something_still_refuses(tmp_path: Path, capsys, made) -> None:
    """Only a start that made nothing is set aside: a user error later in the run, after a
    checkpoint, a model or metrics were written, still blocks the folder."""
    folder = finished_run(tmp_path / "run")
    (folder / "status.json").write_text(json.dumps({"state": "failed", "user_error": True}))
    for name in {"metrics.json", "checkpoints", "model"} - {made}:
        target = folder / name
        if target.is_dir():
            import shutil

            shutil.rmtree(target)
        else:
            target.unlink()
    refused(["train", *SMOKE, f"hydra.run.dir={folder}"], folder, "already holds a run",
            capsys)


def test_a_crashed_start_is_not_set_aside(tmp_path: Path, capsys) -> None:
    """A start that failed on a bug (``user_error`` false) is evidence to read: it blocks."""
    folder = finished_run(tmp_path / "run")
    (folder / "status.json").write_text(json.dumps({"state": "failed", "user_error": False}))
    for name in ("metrics.json",):
        (folder / name).unlink()
    import shutil

    shutil.rmtree(folder / "checkpoints")
    shutil.rmtree(folder / "model")
    refused(["train", *SMOKE, f"hydra.run.dir={folder}"], folder, "already holds a run",
            capsys)


def test_a_failed_start_that_wrote_other_files_still_refuses(tmp_path: Path, capsys) -> None:
    """A user error after the run wrote more than Hydra's files and the log (the zero-shot
    evaluation's files, ``context.json``): the new run would overwrite them, so it blocks."""
    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("seed: 42\n")
    (folder / "train.log").write_text("the run's log\n")
    (folder / "context.json").write_text("{}")
    (folder / "status.json").write_text(json.dumps({"state": "failed", "user_error": True}))
    refused(["train", *SMOKE, f"hydra.run.dir={folder}"], folder, "already holds a run",
            capsys)
