"""Runs are named in dashboards by their strategy and seed, with a flat ``strategy`` key."""

from __future__ import annotations

from hnm.dashboards import tags
from hnm.runcontext import run_label, strategy_name

INFONCE = {"_target_": "hnm.losses.infonce.InfoNCELoss"}


def test_strategy_names_and_labels() -> None:
    assert strategy_name({"loss": INFONCE}) == "baseline"
    assert run_label("baseline", 1) == "baseline s1"
    cfg = {"sampler": {"_target_": "hnm.samplers.tas_balanced.TASBalancedSampler"},
           "negatives": {"gist": {"_target_": "hnm.negatives.gist.GISTFilter"}}, "loss": INFONCE}
    name = strategy_name(cfg, {"sampler": "tas_balanced"})
    assert name == "sampler=tas_balanced+negatives=gist"
    assert run_label(name, 2) == "tas_balanced+gist s2"
    cfg = {"miner": {"_target_": "hnm.miners.ance.ANCEMiner"},
           "loss": {"_target_": "hnm.losses.margin_mse.MarginMSELoss"}}
    assert strategy_name(cfg, {"miner": "ance", "loss": "margin_mse"}) == \
        "miner=ance+loss=margin_mse"
    # without Hydra's choices, the class names
    assert strategy_name({"miner": {"_target_": "hnm.miners.ance.ANCEMiner"}}) == "miner=ANCEMiner"
    assert tags("miner=ance+negatives=gist", {"data": {"name": "x", "eval_split": "dev"}}) == [
        "miner:ance", "negatives:gist", "data:x", "split:dev"]
