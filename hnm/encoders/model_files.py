"""What hnm checks in a model folder before loading it, and how a failed load is reported.

A folder can ship Python code: ``auto_map`` in its ``config.json`` (or ``tokenizer_config.json``)
names classes in its own ``*.py`` files. transformers runs that code only with
``trust_remote_code=True``; without it, a folder whose ``model_type`` is one transformers knows
loads the built-in class instead, silently, which is not the model its author wrote (its
embeddings may differ). So hnm refuses such a folder unless ``encoder.trust_remote_code=true``,
naming the file: a careful user learns that the model ships code and decides.

Weights are read from safetensors where the folder has them; a ``.bin`` file goes through
``torch.load(weights_only=True)``, which refuses a pickle that holds more than tensors. That
refusal, like any other failed load, is reported in one paragraph naming the folder and its
weights files (:func:`load_failure`).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from hnm.errors import ConfigError

CODE_FILES = ("config.json", "tokenizer_config.json")
WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt")
# what loading a broken or hostile folder raises (torch: UnpicklingError for a pickle that
# holds code, RuntimeError for a truncated file; safetensors its own error)
LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, EOFError,
                                                 RuntimeError, pickle.UnpicklingError)
try:  # pragma: no branch
    from safetensors import SafetensorError

    LOAD_ERRORS += (SafetensorError,)
except ImportError:  # pragma: no cover
    pass


def module_folders(folder: Path) -> list[Path]:
    """The folder and the module sub-folders its ``modules.json`` lists."""
    out = [folder]
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        out += [folder / str(m["path"]) for m in modules
                if isinstance(m, dict) and m.get("path")]
    except (OSError, ValueError, TypeError, KeyError):
        pass  # no modules.json (a plain Hugging Face folder), or one the loader reports
    return out


def refuse_model_code(folder: Path, key: str, trust_remote_code: bool = False) -> None:
    """Refuse a model folder that ships its own Python code (``auto_map``), unless trusted."""
    if trust_remote_code:
        return
    for sub in module_folders(folder):
        for name in CODE_FILES:
            path = sub / name
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(body, dict) and body.get("auto_map"):
                raise ConfigError(
                    f"{key}={str(folder)!r}: the model ships its own Python code ('auto_map' in "
                    f"{path}); hnm does not run it, nor silently load a built-in class in its "
                    f"place. {_advice(key)}")


def refuse_loaded_code(config: object, key: str, name: str,
                       trust_remote_code: bool = False) -> None:
    """After loading (a hub model, whose files were not seen before): refuse one whose
    ``config.json`` has ``auto_map`` (its code was not run; a built-in class stood in)."""
    if getattr(config, "auto_map", None) and not trust_remote_code:
        raise ConfigError(f"{key}={name!r}: the model ships its own Python code ('auto_map' in "
                          "its config.json); hnm does not run it, nor use a built-in class in "
                          f"its place. {_advice(key)}")


def _advice(key: str) -> str:
    if key == "encoder.name":
        return "Pass encoder.trust_remote_code=true if you trust this code"
    return f"{key} takes only models without code of their own"


def load_cross_encoder(name: str, key: str, **kwargs: Any) -> Any:
    """``sentence_transformers.CrossEncoder(name, **kwargs)`` with these checks: shipped code
    refused (before loading a local folder, after loading a hub model), a failed load in one
    paragraph naming ``key``, the folder and its weights files."""
    from sentence_transformers import CrossEncoder

    local = Path(str(name)).expanduser()
    folder = local if local.is_dir() else None
    if folder is not None:
        refuse_model_code(folder, key)
    try:
        model = CrossEncoder(str(name), **kwargs)
    except LOAD_ERRORS as err:
        raise load_failure(err, key, str(name), folder) from None
    refuse_loaded_code(getattr(getattr(model, "model", None), "config", None), key, str(name))
    return model


def weights_files(folder: Path) -> list[str]:
    """The weights files of a model folder (and of its module sub-folders)."""
    found = [p for sub in module_folders(folder) for pattern in WEIGHTS
             for p in sorted(sub.glob(pattern))]
    return [str(p) for p in dict.fromkeys(found)]


def load_failure(err: BaseException, key: str, name: str, folder: Path | None) -> ConfigError:
    """One paragraph for a model that could not be loaded: which folder and weights files,
    and why (a pickle refused, a truncated file, a missing file)."""
    text = str(err).strip()
    first = text.splitlines()[0].rstrip(" .") if text else type(err).__name__
    files = weights_files(folder) if folder is not None and folder.is_dir() else []
    where = f" (weights: {', '.join(files)})" if files else ""
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text:
        why = ("a weights file is a pickle that holds more than tensors; hnm loads weights "
               "with weights_only=True and never runs such a file")
    else:
        why = first[:300]
    hint = (" (it ships its own code: pass encoder.trust_remote_code=true if you trust it)"
            if "trust_remote_code" in text else "")
    return ConfigError(f"{key}={name!r} could not be loaded as a model{where}: {why}{hint}")
