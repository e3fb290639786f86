"""The model card (``model/README.md``) of a trained run: what the saved model is, how hnm
trained it and how well it did, so the folder says so wherever it is copied.

sentence-transformers writes a generic card when it saves a model; hnm replaces it with one
that names the base model, the dataset and its splits, the strategy parts with their knobs, the
``hnm train`` command, the zero-shot and trained metrics on the evaluation split and the hnm
version. The card is Markdown with the Hugging Face front matter, so the folder still loads
with ``SentenceTransformer(path)`` and reads as a model card on the hub.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from hnm.catalog import STRATEGY_GROUPS
from hnm.report import METRICS


def _knobs(node: Any) -> str:
    """``key=value`` for a part's settings (its ``_target_`` and nested models left out)."""
    if not isinstance(node, Mapping):
        return ""
    shown = [f"{k}={v}" for k, v in node.items()
             if not str(k).startswith("_") and not isinstance(v, Mapping)]
    return ", ".join(shown)


def _parts(config: Mapping[str, Any]) -> list[str]:
    lines = []
    for group in STRATEGY_GROUPS:
        node = config.get(group)
        if not node:
            continue
        if group == "negatives" and isinstance(node, Mapping) and "_target_" not in node:
            for name, sub in node.items():  # in-batch strategies, by name
                lines.append(f"- `negatives.{name}` ({_target(sub)}): {_knobs(sub) or '—'}")
            continue
        lines.append(f"- `{group}` ({_target(node)}): {_knobs(node) or '—'}")
    return lines


def _target(node: Any) -> str:
    return str(node.get("_target_", "?")).rsplit(".", 1)[-1] if isinstance(node, Mapping) else "?"


def base_model(config: Mapping[str, Any]) -> str:
    enc = config.get("encoder") or {}
    return str(enc.get("name") or enc.get("model_name_or_path") or _target(enc))


def card(config: Mapping[str, Any], metrics: Mapping[str, float], strategy: str,
         overrides: Sequence[str], split: str, dataset: str, version: str) -> str:
    """The card's Markdown. ``config``: the run's resolved config; ``metrics``: its
    ``metrics.json`` values (``zero_shot/{dataset}/…`` and ``{split}/{dataset}/…``)."""
    data = config.get("data") or {}
    base = base_model(config)
    command = " ".join(["hnm", "train", *(shlex.quote(o) for o in overrides)])
    rows = []
    for m in METRICS:
        before = metrics.get(f"zero_shot/{dataset}/{m}")
        after = metrics.get(f"{split}/{dataset}/{m}")
        if after is None:
            continue
        delta = "" if before is None else f"{after - before:+.4f}"
        rows.append(f"| {m} | {'' if before is None else f'{before:.4f}'} | {after:.4f} | "
                    f"{delta} |")
    trainer = config.get("trainer") or {}
    module = config.get("module") or {}
    front = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
             "tags:", "- sentence-transformers", "- hnm",
             *(f"- {p.replace('=', ':')}" for p in strategy.split("+")),
             f"datasets:\n- {dataset}", "---", ""]
    body = [
        f"# {base} trained on {dataset} with {strategy}",
        "",
        f"A bi-encoder fine-tuned from `{base}` with hnm {version}: {strategy} "
        f"({'no negative strategy: in-batch negatives only' if strategy == 'baseline' else 'the strategy parts below'}).",
        "",
        "## How it was trained",
        "",
        f"    {command}",
        "",
        f"- base model: `{base}`",
        f"- dataset: `{dataset}`, training split `{data.get('train_split', 'train')}` "
        f"({int(metrics.get('train/pairs', 0))} pairs), evaluated on `{split}`",
        f"- steps: {int(metrics.get('train/steps', 0))}, batch size {config.get('batch_size')}, "
        f"lr {module.get('lr')}, seed {config.get('seed')}, precision "
        f"{trainer.get('precision')}",
        *_parts(config),
        "",
        f"## Results on `{dataset}` ({split} split)",
        "",
        "| metric | zero-shot | trained | Δ |",
        "|---|--:|--:|--:|",
        *rows,
        "",
        "## Use",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("path/to/this/folder")',
        'embeddings = model.encode(["a query", "a document"])',
        "```",
        "",
    ]
    return "\n".join(front + body)
