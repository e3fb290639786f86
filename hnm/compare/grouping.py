"""Group runs by the config values that differ between them; seeds are replicates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hnm.compare.runs import RunRecord
from hnm.errors import ConfigError

# config keys (and their sub-keys) that never define a group: replicates, paths, loggers
IGNORED = ("seed", "hydra", "paths", "logger", "task_name", "resume", "group",
           # the learning curve only reports (a run trains the same with or without it)
           "eval.every_n_steps", "eval.val_split", "eval.val_queries", "eval.val_corpus")
ABSENT = "<absent>"
STRATEGY_SECTIONS = ("sampler", "miner", "negatives")


@dataclass
class Group:
    """Runs that share every compared config value (they differ at most in ignored keys).

    Attributes:
        label: a readable name, from the overrides that set the group apart or, failing that,
            from its differing config values.
        runs: the group's runs (seeds).
        values: differing config key -> this group's value.
    """

    label: str
    runs: list[RunRecord]
    values: dict[str, object]

    @property
    def is_plain(self) -> bool:
        """True when no run of the group has a batch sampler, miner or negative strategy."""
        return not any(_in_section(k, s) and v not in (None, {}, [])
                       for r in self.runs for k, v in r.config.items()
                       for s in STRATEGY_SECTIONS)


def _in_section(key: str, section: str) -> bool:
    return key == section or key.startswith(f"{section}.")


def _ignored(key: str, ignore: Sequence[str]) -> bool:
    key = key.lstrip("+~")
    return any(key == i or key.startswith(f"{i}.") or key.startswith(f"{i}/") for i in ignore)


def differing_keys(runs: Sequence[RunRecord], ignore: Sequence[str] = IGNORED) -> list[str]:
    """Config keys whose value is not the same in every run (absent counts as a value)."""
    keys = sorted({k for r in runs for k in r.config if not _ignored(k, ignore)})
    return [k for k in keys if len({repr(r.config.get(k, ABSENT)) for r in runs}) > 1]


def _override_label(runs: Sequence[RunRecord], every: set[str], ignore: Sequence[str]
                    ) -> str | None:
    sets = {tuple(o for o in r.overrides if o not in every and not _ignored(o.split("=")[0],
                                                                           ignore))
            for r in runs}
    return " ".join(sets.pop()) if len(sets) == 1 else None


def _value_label(values: dict[str, object]) -> str:
    """``sampler=NGAMESampler`` for a section whose target differs, ``key=value`` otherwise."""
    parts, covered = [], set()
    for key, value in values.items():
        if key.endswith("._target_"):
            section = key[: -len("._target_")]
            covered.add(section)
            short = ABSENT if value == ABSENT else str(value).rsplit(".", 1)[-1]
            parts.append(f"{section}={'none' if short == ABSENT else short}")
    for key, value in values.items():
        if not any(_in_section(key, s) for s in covered):
            parts.append(f"{key}={'none' if value == ABSENT else value}")
    return " ".join(parts)


def group_runs(runs: Sequence[RunRecord], ignore: Sequence[str] = IGNORED) -> list[Group]:
    """Group ``runs`` by their differing config values, in order of first appearance.

    Labels come from the overrides shared by a group's runs, minus those every run has and
    those of ignored keys (``+sampler=ngame loss.temperature=0.1``); ``defaults`` when none is
    left. Where overrides do not tell groups apart, the differing values name them.
    """
    keys = differing_keys(runs, ignore)
    buckets: dict[tuple[str, ...], list[RunRecord]] = {}
    for run in runs:
        buckets.setdefault(tuple(repr(run.config.get(k, ABSENT)) for k in keys), []).append(run)
    every = set.intersection(*(set(r.overrides) for r in runs)) if runs else set()
    groups = [Group(label=_override_label(m, every, ignore) or "", runs=m,
                    values={k: m[0].config.get(k, ABSENT) for k in keys})
              for m in buckets.values()]
    by_override = [_override_label(g.runs, every, ignore) for g in groups]
    if None in by_override or len(set(by_override)) < len(by_override):
        for g in groups:
            g.label = _value_label(g.values)
    for i, g in enumerate(groups):
        g.label = g.label or "defaults"
        if [x.label for x in groups].count(g.label) > 1:
            g.label = f"{g.label} #{i + 1}"
    return groups


def pick_baseline(groups: Sequence[Group], spec: str | None) -> int:
    """Index of the baseline group.

    ``spec`` is a group's number as printed (1-based), its exact label, or a string found in
    exactly one label. Without it: the first group with no sampler, miner or negatives, else
    the first group.
    """
    if not groups:
        raise ConfigError("no groups to compare")
    if spec is None:
        return next((i for i, g in enumerate(groups) if g.is_plain), 0)
    labels = [g.label for g in groups]
    if spec.isdigit() and 1 <= int(spec) <= len(groups):
        return int(spec) - 1
    if spec in labels:
        return labels.index(spec)
    hits = [i for i, x in enumerate(labels) if spec in x]
    if len(hits) == 1:
        return hits[0]
    raise ConfigError(f"--baseline {spec!r} matches {len(hits)} groups; give a number "
                      f"1-{len(groups)} or one of the labels: " + "; ".join(labels))
