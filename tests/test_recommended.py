"""``experiment=recommended``: exactly the recipe the README measured (TAS-Balanced's topic-aware
batches without mined negatives, two epochs, bf16-mixed steps where the hardware has bf16) on the
default experiment's data, model, batch and learning rate, and a part of it replaceable from the
CLI."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hnm.catalog import canonical_overrides, conf_root
from hnm.compare.runs import flatten as flat


def composed(overrides: list[str]) -> dict:
    with initialize_config_dir(str(conf_root()), version_base=None):
        cfg = compose("train", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def test_the_recipe_changes_only_the_sampler_the_epochs_and_the_training_precision() -> None:
    base = flat(composed([]))
    rec = flat(composed(["experiment=recommended"]))
    tas = flat(composed(["+sampler=tas_balanced"]))
    changed = {k for k in rec.keys() | base.keys() if rec.get(k) != base.get(k)}
    sampler = {k for k in changed if k.startswith("sampler.")}
    assert changed - sampler == {"trainer.max_epochs", "trainer.precision"}
    assert (rec["trainer.max_epochs"], base["trainer.max_epochs"]) == (2, 1)
    assert (rec["trainer.precision"], base["trainer.precision"]) == ("auto", "32-true")
    # TAS-Balanced's batches, without its mined negative
    assert {k: rec[k] for k in sampler} == {**{k: tas[k] for k in sampler},
                                            "sampler.num_negatives": 0}
    # everything else is the default experiment's
    for key in ("data.max_train_pairs", "batch_size", "module.lr", "encoder.inference",
                "loss._target_", "dropout" if "dropout" in base else "module.dropout"):
        assert rec[key] == base[key]


def test_a_part_of_the_recipe_is_replaced_from_the_command_line() -> None:
    for arg in ("sampler=ngame", "+sampler=ngame"):
        argv = canonical_overrides("train", ["experiment=recommended", arg])
        assert argv == ["experiment=recommended", "sampler=ngame"]
        assert composed(argv)["sampler"]["_target_"] == "hnm.samplers.ngame.NGAMESampler"
    # without the preset, a sampler is still added
    assert canonical_overrides("train", ["sampler=ngame"]) == ["+sampler=ngame"]
    # a group the preset does not choose is still added
    argv = canonical_overrides("train", ["experiment=recommended", "miner=bm25"])
    assert argv == ["experiment=recommended", "+miner=bm25"]
    assert composed(argv)["miner"]["_target_"] == "hnm.miners.bm25.BM25Miner"


def test_the_preset_trains_through_the_cli(tmp_path, capsys) -> None:
    """A short run of the preset (tiny encoder): it trains with TAS-Balanced batches and no
    mined negative, in the precision the hardware offers, and its end-of-run line names the
    strategy."""
    import json

    from hnm.cli import main

    run = tmp_path / "run"
    main(["train", "experiment=recommended", "encoder=tiny", "data.max_train_pairs=64",
          "data.max_seq_length=32", "batch_size=16", "trainer.max_steps=4", "logger=none",
          "eval.evaluator.max_queries=50", "eval.zero_shot=false", "data.leakage_check=false",
          "+trainer.enable_progress_bar=false", f"hydra.run.dir={run}"])
    context = json.loads((run / "context.json").read_text())
    assert context["strategy"] == "sampler=tas_balanced"
    config = (run / "config.yaml").read_text()
    assert "num_negatives: 0" in config and "TASBalancedSampler" in config
    assert "max_epochs: 2" in config
    # auto is resolved before the run and the resolved value recorded
    assert ("precision: bf16-mixed" in config) or ("precision: 32-true" in config)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train/steps"] == 4
    assert "trained experiment=recommended (sampler=tas_balanced) on stdlib_code (64 pairs, 4 steps)" in \
        capsys.readouterr().out
