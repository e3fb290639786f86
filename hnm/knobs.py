"""Every knob's type and range, checked on the composed config before anything heavy starts.

:func:`check` runs before Hydra makes the run folder (:mod:`hnm.preflight`) and again at the
start of each command (a sweep's jobs, tests that call the commands directly). It imports
nothing heavy, so a bad value is refused in about the time a misspelt key takes:

- the knobs that belong to no ``_target_`` (``seed``, ``batch_size``, ``data.*``,
  ``trainer.*``, ``checkpoint.*``, …): the table :data:`RULES`;
- the knobs of every node with an hnm ``_target_`` (data source, encoder, loss, sampler, miner,
  negatives, evaluator, poison, and nodes nested in them such as GIST's guide), and ``module``
  and ``bm25`` (the keyword arguments of :data:`SECTIONS`): the constructor's own parameters,
  type hints and ``check_range``/``check_choice`` bounds, read from its source
  (:mod:`hnm.static_signature`).

A refusal is a :class:`~hnm.errors.ConfigError` naming the full key, the value and what was
expected. The constructors still check everything when they run.
"""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from hnm.errors import ConfigError, check_choice, check_range
from hnm.target_knobs import BOOL, INT, NULL, NUM, STR, check_target_node
from hnm.target_knobs import kind_of as _kind

# key -> (kinds allowed, low, high, low_open); NULL among the kinds allows null
RULES: dict[str, tuple[tuple[str, ...], Any, Any, bool]] = {
    "seed": ((INT,), 0, 2**32 - 1, False),
    "batch_size": ((INT,), 1, None, False),
    "optimize_metric": ((STR,), None, None, False),
    "resume": ((STR, NULL), None, None, False),
    "output": ((STR, NULL), None, None, False),
    "device": ((STR, NULL), None, None, False),
    "data.max_train_pairs": ((INT, NULL), 1, None, False),
    "data.max_seq_length": ((INT,), 1, None, False),
    "data.train_split": ((STR,), None, None, False),
    "data.eval_split": ((STR,), None, None, False),
    "data.drop_last": ((BOOL,), None, None, False),
    "data.leakage_check": ((BOOL,), None, None, False),
    "eval.zero_shot": ((BOOL,), None, None, False),
    "eval.batch_size": ((INT,), 1, None, False),
    "eval.split": ((STR, NULL), None, None, False),
    "eval.max_seq_length": ((INT, NULL), 1, None, False),
    "eval.rerank_top_k": ((INT,), 0, None, False),
    "eval.skip_missing": ((BOOL,), None, None, False),
    "eval.every_n_steps": ((INT, NULL), 1, None, False),
    "eval.val_split": ((STR,), None, None, False),
    "eval.val_queries": ((INT, NULL), 1, None, False),
    "eval.val_corpus": ((INT, NULL), 1, None, False),
    "group": ((STR, NULL), None, None, False),
    "trainer.max_epochs": ((INT, NULL), -1, None, False),
    "trainer.max_steps": ((INT,), -1, None, False),
    "trainer.min_epochs": ((INT, NULL), 0, None, False),
    "trainer.min_steps": ((INT, NULL), 0, None, False),
    "trainer.accumulate_grad_batches": ((INT,), 1, None, False),
    "trainer.gradient_clip_val": ((NUM, NULL), 0, None, False),
    "trainer.log_every_n_steps": ((INT,), 1, None, False),
    "trainer.limit_train_batches": ((NUM, NULL), 0, None, True),
    "trainer.num_nodes": ((INT,), 1, None, False),
    "checkpoint.every_n_steps": ((INT, NULL), 1, None, False),
    "checkpoint.every_minutes": ((NUM, NULL), 0, None, True),
    "checkpoint.keep": ((INT,), 1, None, False),
    "progress.every_n_steps": ((INT,), 0, None, False),
    "progress.every_seconds": ((NUM,), 0, None, False),
    "cache.embeddings": ((BOOL,), None, None, False),
    "cache.in_run": ((BOOL,), None, None, False),
    "cache.max_gb": ((NUM,), 0, None, False),
}
CHOICES: dict[str, tuple[Any, ...]] = {
    "progress.enabled": ("auto", True, False),
    "trainer.accelerator": ("cpu", "gpu", "cuda", "mps", "tpu", "auto"),
    # Lightning's values, and auto (hnm resolves it: bf16-mixed where the hardware has bf16)
    "trainer.precision": ("64-true", "64", "32-true", "32", "16-mixed", "16", "bf16-mixed",
                          "bf16", "16-true", "bf16-true", "transformer-engine",
                          "transformer-engine-float16", "auto"),
}
# a torch device (or the trainer's accelerator name, which encoders map to one)
DEVICE = r"(?i)(cpu|cuda|gpu|auto|mps|xpu|hpu)(:\d+)?"
# sections that are the keyword arguments of a class without naming it in a _target_
SECTIONS = {"module": "hnm.modules.retrieval.RetrievalModule",
            "bm25": "hnm.eval.bm25_model.BM25Model"}
# nodes instantiated by hnm that hold _target_s (the trainer and loggers are Lightning's)
TARGET_SECTIONS = ("data", "encoder", "loss", "sampler", "miner", "negatives", "eval", "poison")


def _value(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """``(found, value)`` at ``key``; a value that does not resolve is not judged here."""
    try:
        node = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception:  # noqa: BLE001 - missing (???) or a bad interpolation: reported elsewhere
        return False, None
    return (node is not None or _has(cfg, key)), node


def _has(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def check_rule(key: str, value: Any, kinds: tuple[str, ...], low: Any = None,
               high: Any = None, low_open: bool = False, bounds: bool = True) -> None:
    kind = _kind(value)
    if kind not in kinds and not (kind == INT and NUM in kinds):
        raise ConfigError(f"{key}={value!r} is not valid; expected {' or '.join(kinds)}")
    if bounds and kind in (INT, NUM) and (low is not None or high is not None):
        try:
            check_range(key, value, low, high, low_open=low_open)
        except ConfigError as err:  # "expected an integer >= 1" where only integers fit
            if NUM in kinds:
                raise
            raise ConfigError(str(err).replace("; expected ", f"; expected {INT} ", 1)) from None


def check(cfg: DictConfig) -> None:
    """Refuse the first knob of ``cfg`` whose type is wrong, else the first whose value is
    out of range (what a value is before how large it is: see the module doc)."""
    for bounds in (False, True):
        for key, rule in RULES.items():
            found, value = _value(cfg, key)
            if found:
                check_rule(key, value, *rule, bounds=bounds)
        for section, target in SECTIONS.items():
            node = cfg.get(section) if isinstance(cfg, DictConfig) else None
            if isinstance(node, DictConfig):
                check_target_node(node, section, target, bounds)
        for section in TARGET_SECTIONS:
            node = cfg._get_node(section) if section in cfg else None
            if isinstance(node, (DictConfig, ListConfig)):
                _walk(node, section, bounds)
    for key, valid in CHOICES.items():
        found, value = _value(cfg, key)
        if found:  # 32 and "32" alike (Lightning's precision)
            check_choice(key, str(value) if _kind(value) == INT else value, valid)
    _check_trainer(cfg)
    _check_metric(cfg)
    _check_self_teacher(cfg)


def _check_trainer(cfg: DictConfig) -> None:
    """A run trains at least one step (no ``max_epochs=0``/``max_steps=0``) and ends (not
    ``max_epochs=-1`` with ``max_steps=-1``); ``devices`` names at least one device, and
    ``device`` one torch knows."""
    found_e, epochs = _value(cfg, "trainer.max_epochs")
    found_s, steps = _value(cfg, "trainer.max_steps")
    if found_e and epochs == 0:
        raise ConfigError("trainer.max_epochs=0 would train nothing (the 'trained' row would "
                          "be the starting model); expected >= 1, or -1 with trainer.max_steps")
    if found_s and steps == 0:
        raise ConfigError("trainer.max_steps=0 would train nothing (the 'trained' row would be "
                          "the starting model); expected >= 1, or -1 for no step limit")
    for key in ("device", "encoder.device"):  # hnm eval's device, the encoder's
        found, device = _value(cfg, key)
        if found and device is not None and not re.fullmatch(DEVICE, str(device)):
            raise ConfigError(f"{key}={device!r} is not valid; expected cpu, cuda, cuda:N, "
                              "gpu, auto or mps (or null: cuda when there is one, else cpu)")
    found_d, devices = _value(cfg, "trainer.devices")
    if found_d and _kind(devices) == INT and (devices == 0 or devices < -1):
        raise ConfigError(f"trainer.devices={devices} is not valid; expected >= 1, -1 (every "
                          "device), a list of device ids or 'auto'")
    if found_e and found_s and epochs == -1 and steps == -1:
        raise ConfigError("trainer.max_epochs=-1 with trainer.max_steps=-1 would train without "
                          "end; set trainer.max_steps=N or trainer.max_epochs=N")


def _check_metric(cfg: DictConfig) -> None:
    """``optimize_metric``: a metric of the final evaluation (or a full key, not judged here),
    checked now rather than after training."""
    from hnm.report import METRICS, POISON_METRICS

    found, value = _value(cfg, "optimize_metric")
    if not found or not isinstance(value, str):
        return
    found_split, split = _value(cfg, "data.eval_split")
    if value.count("/") == 2 and found_split and value.split("/")[0] != str(split):
        raise ConfigError(f"optimize_metric={value!r} names the stage {value.split('/')[0]!r}, "
                          f"but this run's final evaluation is on data.eval_split={split!r} "
                          f"(its keys are {split}/…); give the metric alone (optimize_metric="
                          f"{value.split('/')[-1]}) or {split}/{value.split('/', 1)[1]}")
    if "/" in value:
        return
    if value not in (*METRICS, *POISON_METRICS) and not re.fullmatch(r"(clean_)?asr@\d+", value):
        raise ConfigError(f"optimize_metric={value!r} is not a metric of the final evaluation; "
                          f"expected one of: {', '.join(METRICS)} (with +poison: "
                          f"{', '.join(POISON_METRICS[:3])}, …), or a full key of the "
                          "eval split such as test/stdlib_code/ndcg@10")


def _walk(node: Any, key: str, bounds: bool, depth: int = 0) -> None:
    """:func:`check_target_node` on every node with an hnm ``_target_`` below ``node``,
    following interpolated nodes (``guide: ${encoder}``) a few levels deep (not in circles)."""
    if depth > 8:
        return
    if isinstance(node, DictConfig):
        if "_target_" in node and not OmegaConf.is_interpolation(node, "_target_"):
            target = node._get_node("_target_")._value()  # type: ignore[union-attr]
            if isinstance(target, str) and target.startswith("hnm."):
                check_target_node(node, key, target, bounds)
        for k in node.keys():
            name = str(k)
            child: Any = node._get_node(name)
            if isinstance(child, (DictConfig, ListConfig)):
                _walk(child, f"{key}.{name}", bounds, depth + 1)
            elif OmegaConf.is_interpolation(node, name):  # e.g. guide: ${encoder}
                try:
                    resolved = node[name]
                except Exception:  # noqa: BLE001 - reported where it is used
                    continue
                if isinstance(resolved, DictConfig):
                    _walk(resolved, f"{key}.{name}", bounds, depth + 1)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            item: Any = node._get_node(i)
            if isinstance(item, (DictConfig, ListConfig)):
                _walk(item, f"{key}[{i}]", bounds, depth + 1)


# distillation losses whose default (infonce_weight 0) has nothing to learn from the starting
# model's own scores
DISTILLATION = {"hnm.losses.kl.KLDistillationLoss": "kl",
                "hnm.losses.margin_mse.MarginMSELoss": "margin_mse"}


def _starting_model_teacher(cfg: DictConfig) -> str | None:
    """Where the batch's teacher scores come from, when that is the starting model: the
    denoising miner's default guide, or (without a miner) TAS-Balanced's default teacher."""
    miner, sampler = cfg.get("miner"), cfg.get("sampler")
    if isinstance(miner, DictConfig) and miner.get("_target_"):
        if (str(miner.get("_target_")).endswith(".DenoiseMiner") and miner.get("guide") is None
                and miner.get("cross_encoder") is None):
            return ("+miner=denoise's guide, which is the starting model (miner.guide and "
                    "miner.cross_encoder are null)")
        return None
    if (isinstance(sampler, DictConfig)
            and str(sampler.get("_target_")).endswith(".TASBalancedSampler")
            and sampler.get("guide") is None):
        return "+sampler=tas_balanced's teacher, which is the starting model (sampler.guide is null)"
    return None


def _check_self_teacher(cfg: DictConfig) -> None:
    """Refuse loss=kl / loss=margin_mse with no hard-label term whose teacher scores are the
    starting model's own: the student starts where its teacher is, so the loss is about zero
    and trains nothing (``loss.allow_self_teacher=true`` runs it deliberately)."""
    loss = cfg.get("loss")
    if not isinstance(loss, DictConfig):
        return
    name = DISTILLATION.get(str(loss.get("_target_")))
    if (name is None or loss.get("allow_self_teacher") or loss.get("teacher") is not None
            or str(loss.get("teacher_source", "auto")) == "model"
            or float(loss.get("infonce_weight") or 0.0) > 0.0):
        return
    source = _starting_model_teacher(cfg)
    if source is None:
        return
    raise ConfigError(
        f"loss={name} with loss.infonce_weight=0 would distil the starting model into itself: "
        f"its teacher scores come from {source}, so the student starts where its teacher is "
        "and the loss has nothing to teach (on stdlib_code dev, loss=kl +miner=denoise ended "
        "at nDCG@10 0.6045, the zero-shot model's 0.6057, against the baseline's 0.6370 on the "
        "same seed). Give a teacher stronger than the model being trained: "
        "miner.cross_encoder=PATH or miner.guide='{_target_: hnm.encoders.factory.hf_encoder, "
        "name: PATH}' (+miner=denoise), sampler.guide=… (+sampler=tas_balanced) or "
        "loss.teacher=PATH_OR_NAME_OF_A_CROSS_ENCODER; or keep the hard labels with "
        "loss.infonce_weight=1.0 (TAS-B's in-batch term; not measured here). To run it "
        "deliberately anyway: loss.allow_self_teacher=true")
