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
    message = refused(tmp_path, "ships its own Python code", str(tmp_path / "config.json"))
    assert "encoder.trust_remote_code=true" in message
    assert not marker.exists()  # the model's code never ran


def _saved_tiny(folder: Path, tiny_model) -> Path:
    tiny_model.save(str(folder))
    return folder


def test_code_beside_a_known_model_type_is_refused_too(tmp_path: Path, tiny_model) -> None:
    """``auto_map`` with ``model_type: bert``: transformers would load its own BERT in place of
    the shipped class, silently; hnm refuses, naming the file."""
    folder = _saved_tiny(tmp_path / "model", tiny_model)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "bert"
    (folder / "config.json").write_text(json.dumps({**config, "auto_map": {
        "AutoModel": "custom.Model"}}))
    refused(folder, "ships its own Python code", str(folder / "config.json"))
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        **json.loads((folder / "tokenizer_config.json").read_text()),
        "auto_map": {"AutoTokenizer": ["custom.Tok", None]}}))
    refused(folder, "ships its own Python code", "tokenizer_config.json")


def test_a_pickle_as_weights_names_the_file(tmp_path: Path, tiny_model) -> None:
    folder = _saved_tiny(tmp_path / "model", tiny_model)
    marker = tmp_path / "ran"
    (folder / "model.safetensors").unlink()
    weights = folder / "pytorch_model.bin"
    weights.write_text(f"cos\nsystem\n(S'touch {marker}'\ntR.")
    refused(folder, str(weights), "holds more than tensors")
    assert not marker.exists()
    weights.write_bytes(b"PK\x03\x04 truncated")
    refused(folder, str(weights))


def test_eval_of_a_run_with_pickled_weights(tmp_path: Path, tiny_model, capsys) -> None:
    """``hnm eval model=RUN``: one paragraph naming the weights file, no traceback."""
    from hnm.cli import main
    from tests.beir_fixture import write_beir

    run = tmp_path / "run"
    _saved_tiny(run / "model", tiny_model)
    (run / "model" / "model.safetensors").unlink()
    (run / "model" / "pytorch_model.bin").write_text("cos\nsystem\n(S'true'\ntR.")
    beir = write_beir(tmp_path / "toy")
    (run / "config.yaml").write_text(
        f"data:\n  name: toy\n  eval_split: test\n  source:\n    _target_: "
        f"hnm.data.beir.load_beir\n    path: {beir}\neval:\n  batch_size: 8\nseed: 1\n")
    with pytest.raises(SystemExit) as stop:
        main(["eval", f"model={run}", "device=cpu", f"hydra.run.dir={tmp_path / 'e'}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"model={run}" in err and str(run / "model" / "pytorch_model.bin") in err


def test_trust_remote_code_defaults_to_false() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["encoder=hf", "encoder.name=x"])
    assert cfg.encoder.trust_remote_code is False
