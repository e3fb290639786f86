"""What ``hnm eval`` evaluates: model specs (``model=…``) and dataset specs (``eval.datasets``).

Model specs:

- ``null`` (default): the ``encoder`` config group (``encoder=minilm``, ``encoder=hf
  encoder.name=…``), as ``hnm train`` would start from;
- ``bm25``: the BM25 baseline (:class:`hnm.eval.bm25_model.BM25Model`, knobs ``bm25.*``);
- a run folder of ``hnm train`` (``model/`` plus ``config.yaml`` or ``.hydra/config.yaml``):
  its model, and its dataset, eval settings and seed, so its ``test/…`` metrics are
  reproduced; command-line ``data.*``/``eval.*``/``seed`` overrides still apply;
- a saved sentence-transformers (or plain Hugging Face) model folder;
- any other string: a Hugging Face hub model name (needs ``HF_HUB_OFFLINE=0``).

Dataset specs (a list, or one comma-separated string; ``null`` = the run's or ``data`` group's
dataset): ``stdlib_code`` (or any option of ``conf/data`` that needs no value), ``beir:PATH``,
``hf:NAME`` (hub id or ``save_to_disk`` folder), ``mteb:TASK`` or ``mteb:TASK/SUBSET``
(:mod:`hnm.eval.mteb_adapter`), or a bare BEIR folder path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from hnm.errors import ConfigError, DataError

DATASET_FORMS = "stdlib_code, beir:PATH, hf:NAME, mteb:TASK[/SUBSET]"


@dataclass
class ModelSpec:
    """A parsed ``model=`` value: ``kind`` is run | saved | hub | encoder | bm25."""

    kind: str
    source: str = ""
    run_config: DictConfig | None = None

    @property
    def model_dir(self) -> str:
        return str(Path(self.source) / "model") if self.kind == "run" else self.source


# the sections of a run folder's config that ``hnm eval`` reads (and ``seed``); the rest of
# the file is never used
RUN_SECTIONS = ("data", "eval", "poison")


def run_config(folder: Path) -> DictConfig | None:
    """The config of a run folder: ``config.yaml`` (resolved) or ``.hydra/config.yaml``. What
    ``hnm eval`` reads of it may only name hnm's own classes (:mod:`hnm.received`)."""
    from hnm.received import check_sections

    for path in (folder / "config.yaml", folder / ".hydra" / "config.yaml"):
        if path.is_file():
            try:
                cfg = OmegaConf.load(path)
            except Exception as err:  # noqa: BLE001 - YAML and OmegaConf errors vary
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise DataError(f"{path}: not a readable YAML config ({type(err).__name__}: "
                                f"{first[:200]})") from None
            if not isinstance(cfg, DictConfig) or "data" not in cfg or "eval" not in cfg:
                raise DataError(f"{path}: not the config of an hnm run (no data/eval keys)")
            check_sections(cfg, RUN_SECTIONS, str(path))
            return cfg
    return None


def parse_model(value: Any) -> ModelSpec:
    """Classify ``model=``; raises :class:`DataError` for a folder hnm cannot use."""
    if value is None or str(value).strip() in ("", "encoder"):
        return ModelSpec("encoder")
    text = str(value).strip()
    if text.lower() == "bm25":
        return ModelSpec("bm25")
    path = Path(text).expanduser()
    if path.is_dir():
        cfg = run_config(path)
        if cfg is not None and (path / "model").is_dir():
            return ModelSpec("run", str(path), cfg)
        if (path / "modules.json").is_file() or (path / "config.json").is_file():
            return ModelSpec("saved", str(path))
        why = (_without_model(path) if cfg is not None
               else "it has neither model/ with config.yaml (a run folder) nor modules.json or "
                    "config.json (a saved model)")
        raise DataError(f"model={text}: cannot evaluate this folder: {why}")
    if path.exists() or text.startswith(("/", ".", "~")):
        raise DataError(f"model={text}: no such folder (expected a run folder, a saved model "
                        "folder, bm25, or a Hugging Face model name)")
    return ModelSpec("hub", text)


def _without_model(folder: Path) -> str:
    """Why a run folder has no ``model/``, from its ``status.json``."""
    from hnm.runinfo import read_status

    status = read_status(folder) or {}
    state = status.get("state")
    if state == "finished":
        return ("it is a run folder whose status.json says the run finished, but its model/ "
                "folder is missing (moved or deleted?)")
    if state == "failed":
        error = f": {status['error']}" if status.get("error") else ""
        return f"the run failed before saving its model (status.json{error})"
    if state == "interrupted":
        return (f"the run was interrupted before saving its model; continue it with "
                f"{status.get('resume') or 'hnm train resume=' + str(folder)}")
    return "it is a run folder without model/ (the run did not finish)"


def saved_max_seq_length(folder: str) -> int | None:
    """``max_seq_length`` recorded in a sentence-transformers folder, if any."""
    path = Path(folder) / "sentence_bert_config.json"
    try:
        return int(json.loads(path.read_text())["max_seq_length"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def with_run_settings(cfg: DictConfig, run_cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with a run's ``data``, ``eval``, ``seed`` and ``encoder.inference`` (the no-grad
    backend its evaluation ran: bf16 and float32 metrics differ in the last digits), then the
    user's command-line overrides of those keys re-applied (``data=…`` on the command line
    keeps ``cfg.data``, ``encoder.inference=…`` or ``encoder=…`` the user's backend)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = [o for o in OverridesParser.create().parse_overrides(overrides)
              if not o.is_delete() and not o.key_or_group.startswith("hydra")]
    chosen = {o.key_or_group.lstrip("+") for o in parsed}
    out = cfg.copy()
    with open_dict(out):
        if "data" not in chosen:
            out.data = run_cfg.data
        out.eval = OmegaConf.merge(cfg.eval, run_cfg.eval)
        if "seed" not in chosen and "seed" in run_cfg:
            out.seed = run_cfg.seed
        inference = OmegaConf.select(run_cfg, "encoder.inference", default=None)
        if inference is not None and not chosen & {"encoder", "encoder.inference"} \
                and out.get("encoder") is not None:
            OmegaConf.update(out, "encoder.inference", inference, force_add=True)
        for o in parsed:
            key = o.key_or_group.lstrip("+")
            if key.startswith(("data.", "eval.")) and ("data" not in chosen
                                                      or key.startswith("eval.")):
                OmegaConf.update(out, key, o.value(), force_add=True)
    return out


def with_poison(cfg: DictConfig, run_cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """A run folder's ``poison`` settings (its attacker passages and triggered queries), unless
    the command line chose its own (``+poison=grammar …``)."""
    chosen = {o.lstrip("+~").split("=")[0].split(".")[0] for o in overrides}
    if "poison" in chosen or not run_cfg.get("poison"):
        return cfg
    out = cfg.copy()
    with open_dict(out):
        out.poison = run_cfg.poison
    return out


@dataclass
class DatasetSpec:
    """One parsed dataset spec: a ``data`` config node, or an MTEB task."""

    spec: str
    data: DictConfig | None = None
    task: str | None = None
    subset: str | None = None
    keep_name: bool = True


def parse_datasets(value: Any, base: DictConfig, conf_dir: str) -> list[DatasetSpec]:
    """Dataset specs of ``eval.datasets``; ``base`` is the default ``data`` node."""
    if value is None or value == "" or value == []:
        return [DatasetSpec(str(base.get("name") or "data"), base)]
    items = value.split(",") if isinstance(value, str) else list(value)
    specs = [_one(str(s).strip(), base, Path(conf_dir) / "data") for s in items if str(s).strip()]
    if not specs:
        raise ConfigError(f"eval.datasets={value!r} names no dataset; forms: {DATASET_FORMS}")
    return specs


def _load_node(path: Path) -> DictConfig:
    node = OmegaConf.load(path)
    assert isinstance(node, DictConfig), path
    return node


def _one(spec: str, base: DictConfig, data_dir: Path) -> DatasetSpec:
    kind, sep, rest = spec.partition(":")
    if sep and kind == "mteb":
        task, _, subset = rest.partition("/")
        if not task:
            raise ConfigError(f"eval.datasets: {spec!r} names no MTEB task (mteb:SciFact)")
        return DatasetSpec(spec, task=task, subset=subset or None)
    if sep and kind in ("beir", "hf"):
        if not rest:
            raise ConfigError(f"eval.datasets: {spec!r} needs a path or name after {kind}:")
        node = _load_node(data_dir / f"{kind}.yaml")
        node.path = rest
        if kind == "hf":
            node.name = rest
        return DatasetSpec(spec, node, keep_name=kind != "hf")
    if spec == base.get("name"):
        return DatasetSpec(spec, base)
    option = data_dir / f"{spec}.yaml"
    if option.is_file() and "???" not in option.read_text():
        return DatasetSpec(spec, _load_node(option))
    if Path(spec).expanduser().is_dir():
        return _one(f"beir:{spec}", base, data_dir)
    options = sorted(p.stem for p in data_dir.glob("*.yaml") if "???" not in p.read_text())
    raise ConfigError(f"eval.datasets: cannot read {spec!r}; expected one of the forms "
                      f"{DATASET_FORMS}, where a plain name is one of: {', '.join(options)}")


def load_dataset(spec: DatasetSpec, cfg: DictConfig, split: str | None
                 ) -> tuple[Any, str, bool, int | None]:
    """``(RetrievalData, split, ignore_identical_ids, max_seq_length)`` of a spec; the data
    node is resolved inside ``cfg`` (so ``${paths.cache_dir}`` works)."""
    from hydra.utils import instantiate

    if spec.task is not None:
        from hnm.eval.mteb_adapter import load_mteb_task

        data, task_split, ignore = load_mteb_task(spec.task, spec.subset, split)
        return data, task_split, ignore, None
    root = cfg.copy()
    with open_dict(root):
        root.data = spec.data
    data = instantiate(root.data.source)
    if spec.keep_name and root.data.get("name"):
        data.name = str(root.data.name)
    return data, str(split or root.data.eval_split), False, root.data.get("max_seq_length")
