"""Device mapping for encoders and the DDP relaunch command (no GPU, no process group)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hnm.dist import env_rank, prepare_relaunch, torch_device, world


def test_devices_fall_back_to_cpu_without_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("gpu", "cuda", "cuda:1", "auto", None, "cpu"):
        assert torch_device(name) == "cpu"


def test_gpu_means_this_ranks_cuda_device(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert torch_device("gpu") == "cuda:1" and torch_device("cuda:0") == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert torch_device(None) == "cuda:0"


def test_ranks_without_a_process_group(monkeypatch) -> None:
    assert world() == (1, 0)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert env_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert env_rank() == 3
    monkeypatch.setenv("LOCAL_RANK", "1")  # Lightning's launcher wins over SLURM's variable
    assert env_rank() == 1


@pytest.mark.parametrize("world_size", [1, 2])
def test_relaunch_leaves_single_device_and_external_launchers_alone(monkeypatch,
                                                                    world_size) -> None:
    import sys

    argv = list(sys.argv)
    trainer = SimpleNamespace(world_size=world_size,
                              strategy=SimpleNamespace(launcher=None, cluster_environment=None))
    prepare_relaunch(trainer)  # no subprocess launcher: nothing to do
    assert sys.argv == argv
