"""Options whose old default was measured to end below the baseline refuse to start until the
user chooses: ``+negatives=gist`` without a guide, ``+miner=ar2`` without a ranker and
``+miner=adore`` without a trained document encoder exit 2
through the CLI with one paragraph, before any training; the explicit opt-ins of the old
defaults still start."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.cli import main

SMOKE = ["experiment=smoke", "logger=none", "eval.zero_shot=false", "data.leakage_check=false",
         "+trainer.enable_progress_bar=false"]


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """The exit status of ``hnm ARGV`` run in-process, and its stderr."""
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    return code, capsys.readouterr().err


def refused(tmp_path: Path, option: list[str], capsys) -> str:
    run = tmp_path / "run"
    code, err = cli(["train", *SMOKE, *option, f"hydra.run.dir={run}"], capsys)
    assert code == 2, err[-3000:]
    assert "Traceback" not in err and err.count("hnm: error: ") == 1, err[-3000:]
    message = err.split("hnm: error: ", 1)[1].strip()
    assert "\n" not in message, message  # one paragraph
    # refused before training: no step ran, nothing was saved
    assert not (run / "checkpoints").exists() and not (run / "metrics.json").exists()
    assert not (run / "model").exists()
    return message


def test_gist_without_a_guide_is_refused(tmp_path: Path, capsys) -> None:
    message = refused(tmp_path, ["+negatives=gist"], capsys)
    assert message.startswith("+negatives=gist needs a guide model stronger than"), message
    assert "negatives.gist.guide='{_target_: hnm.encoders.factory.hf_encoder, name: PATH}'" \
        in message
    assert "-0.0080" in message and "sentence-transformers" in message
    assert "negatives.gist.guide='${encoder}'" in message


def test_ar2_without_a_ranker_is_refused(tmp_path: Path, capsys) -> None:
    message = refused(tmp_path, ["+miner=ar2"], capsys)
    assert message.startswith("+miner=ar2 needs a ranker"), message
    assert "miner.ranker.model=PATH" in message and "miner.ranker.model=fresh" in message
    assert "-0.0626" in message and "chance" in message


def test_adore_without_a_document_encoder_is_refused(tmp_path: Path, capsys) -> None:
    message = refused(tmp_path, ["+miner=adore"], capsys)
    assert message.startswith("+miner=adore trains the query encoder only"), message
    assert "miner.doc_encoder is null" in message and "-0.0200" in message
    assert "encoder.name=RUN/model +miner=adore miner.doc_encoder='${encoder}'" in message
    assert "miner.doc_encoder='{_target_: hnm.encoders.factory.hf_encoder, name: PATH}'" \
        in message


def test_rs2_shorter_than_one_pass_is_refused(tmp_path: Path, capsys) -> None:
    message = refused(tmp_path, ["+sampler=rs2"], capsys)
    assert message.startswith("+sampler=rs2 trains 26 of the 256 pairs"), message
    assert "trainer.max_epochs=10" in message and "sampler.partial_pass=true" in message
    assert "-0.02" in message and "dev" in message


@pytest.mark.slow
@pytest.mark.parametrize("option", [
    ["+negatives=gist", "negatives.gist.guide='${encoder}'"],
    ["+miner=ar2", "miner.ranker.model=fresh", "miner.refresh_every_n_steps=2"],
    ["+miner=adore", "miner.doc_encoder='${encoder}'"],
], ids=["gist-own-guide", "ar2-fresh-ranker", "adore-starting-doc-encoder"])
def test_the_explicit_opt_ins_train(tmp_path: Path, capsys, option: list[str]) -> None:
    run = tmp_path / "run"
    code, err = cli(["train", *SMOKE, *option, "trainer.max_steps=4", f"hydra.run.dir={run}"],
                    capsys)
    assert code == 0, err[-3000:]
    assert (run / "metrics.json").is_file() and (run / "model").is_dir()
