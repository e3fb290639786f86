"""A model path that is not a model: one ConfigError naming ``encoder.name`` and what was found;
code shipped with a model never runs unless ``encoder.trust_remote_code=true``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hnm.encoders.factory import hf_encoder
from hnm.entry import user_message
from hnm.errors import ConfigError
from tests.test_config import CONF


def refused(path: Path, *needles: str) -> str:
    with pytest.raises(ConfigError) as err:
        hf_encoder(str(path))
    message = user_message(err.value)
    assert message is not None and "Traceback" not in message
    for needle in (f"encoder.name='{path}'", *needles):
        assert needle in message, (needle, message)
    return message


def test_a_folder_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a model")
    refused(tmp_path, "is not a model", "modules.json", "config.json", "a folder without either")


def test_a_file(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"\x00" * 10)
    refused(tmp_path / "model.bin", "is not a model", "found a file")


@pytest.mark.parametrize(("config", "needle"), [
    ("{broken", "not a valid JSON file"),
    (json.dumps({"model_type": "nosuch"}), "could not be loaded as a model"),
    (json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "intermediate_size": 8}),
     "could not be loaded as a model"),  # a config without weights or tokenizer
])
def test_a_broken_model_folder(tmp_path: Path, config: str, needle: str) -> None:
    (tmp_path / "config.json").write_text(config)
    refused(tmp_path, needle)


def test_remote_code_is_refused_unless_trusted(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "hnm_custom", "auto_map": {"AutoConfig": "custom.Config",
                                                 "AutoModel": "custom.Model"}}))
    (tmp_path / "custom.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    message = refused(tmp_path, "could not be loaded as a model")
    assert "trust_remote_code" in message
    assert not marker.exists()  # the model's code never ran


def test_trust_remote_code_defaults_to_false() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["encoder=hf", "encoder.name=x"])
    assert cfg.encoder.trust_remote_code is False
