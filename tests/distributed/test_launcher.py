"""The SLURM launcher config composes, follows the trainer's devices, and makes valid sbatch."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from hnm.cli import config_dir

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def _launcher(overrides: list[str]):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", *overrides],
                      return_hydra_config=True)
    return instantiate(cfg.hydra.launcher)


def test_one_task_per_gpu_following_the_trainer(tmp_path: Path, monkeypatch) -> None:
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import SlurmExecutor

    launcher = _launcher(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                          "hydra.launcher.partition=gpu"])
    params = dict(launcher.params)
    assert (params["nodes"], params["gpus_per_node"], params["tasks_per_node"]) == (2, 4, 4)
    # the same translation the plugin does before submitting (no srun here: pretend)
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    text = executor._executor._make_submission_file_text("python -c pass", "uid")
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu",
                 "--cpus-per-task=8"):
        assert line in text


def test_single_gpu_default() -> None:
    params = _launcher(["trainer=gpu"]).params
    assert (params["nodes"], params["gpus_per_node"], params["tasks_per_node"]) == (1, 1, 1)
