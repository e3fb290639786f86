"""Every option of every config group: what it does, its paper and its knobs (``hnm list``).

The facts come from where they are maintained, so the listing cannot drift from them:

- an option's **header comment** (the comment lines that open ``conf/GROUP/OPTION.yaml``): its
  first line is the one-line description, the lines after it the details, and two tags,
  ``paper:`` (a short citation, ``Author et al., Venue Year``, optionally with the title in
  double quotes; ``—`` for an option that implements no paper) and ``needs:`` (what it needs
  beyond a plain run: a teacher, extra compute, …). A tag's value may go on over the next
  comment lines indented by two more spaces;
- its **knobs and defaults** from the YAML, composed through its ``defaults`` list as Hydra
  composes them (a miner's shared knobs from ``conf/miner/shared/``), without importing Hydra;
- each knob's **meaning**: the comment on its line, else the comment lines right above it,
  else the ``Args:`` entry of its ``_target_``'s docstring (read from the source by
  :func:`hnm.static_signature.docstrings_of`, following ``**kwargs`` to the base classes),
  else the comment of the mapping it is in.

``hnm list`` prints every group, ``hnm list GROUP`` one group and ``hnm list GROUP/OPTION`` one
option; ``hnm list --markdown`` writes ``docs/strategies.md`` (the strategy groups), which a
test compares with this output. Nothing here imports torch, Lightning or Hydra: ``hnm list``
answers in a fraction of a second.

:func:`help_text` is the part of ``hnm train|eval|mine --help`` that depends on the command
(its header comment and the groups it uses); :func:`canonical_overrides` makes ``+GROUP=X``
and ``GROUP=X`` mean the same in every command.
"""

from __future__ import annotations

import functools
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# the groups whose options are training strategies (docs/strategies.md)
STRATEGY_GROUPS = ("sampler", "miner", "negatives", "loss")
# the primary config of each Hydra command, and the groups it takes that its defaults list
# does not name (added with +GROUP=OPTION)
COMMANDS = {"train": "train", "eval": "eval_cmd", "mine": "mine"}
ADD_ONS = {"train": ("sampler", "miner", "negatives", "poison")}
TAGS = ("paper", "needs")
NO_PAPER = "—"


@dataclass(frozen=True)
class GroupInfo:
    title: str
    blurb: str
    notes: tuple[str, ...] = ()  # Markdown paragraphs shown after the group's options


GROUPS: dict[str, GroupInfo] = {
    "sampler": GroupInfo(
        "Batch samplers", "which pairs share a batch. Without a sampler, batches are a seeded "
        "random shuffle of the training pairs."),
    "miner": GroupInfo(
        "Negative miners", "explicit negatives for every training pair, from a ranking of the "
        "corpus (all but taxonomy) or a file.",
        ("Every miner reports `strategy/miner/negatives_attached` (mined negatives handed to "
         "training steps), `negatives_padded` (random documents filling a short pool), "
         "`candidates_dropped` (by the score and guide filters) and, where they apply, "
         "`pairs_with_teacher_scores`, `negatives_random` (STAR), `refreshes` (ANCE) and "
         "`queries_retrieved_live` (ADORE) in `metrics.json`. A miner under which no query "
         "keeps a candidate, or whose `range_min` skips the whole corpus, is refused before "
         "training.",
         "`hnm mine` (its `miner=` defaults to `dense_static`) writes any miner's negatives to "
         "a file; `+miner=from_file miner.path=FILE` trains on them.")),
    "negatives": GroupInfo(
        "In-batch negative strategies", "mask, add, mix or re-weight the candidates of every "
        "batch. They compose in command-line order: `+negatives=[gist,queue]`; a knob is "
        "`negatives.NAME.KNOB`, e.g. `negatives.gist.margin=0.1`.",
        ("Order matters: a masking strategy only sees the candidates that exist when it runs, "
         "so put `queue`/`prebatch` before `gist`/`false_negative_mask` to guard the queued "
         "texts too, and `mochi` last so that masked false negatives are never mixed into "
         "synthetic negatives.",
         "Telemetry (logged as `neg/<name>` every `module.telemetry_every` steps): "
         "`gist_masked_frac`, `gist_guide_pos`; `mochi_mix_score`, `mochi_query_mix_score`, "
         "`mochi_hard_score`; `queue_fill`, `queue_masked`, `queue_score`; `prebatch_size`, "
         "`prebatch_masked`, `prebatch_score`; `fnm_masked_frac`, `fnm_text_dups`; "
         "`progressive_focus`, `progressive_w_max`, `progressive_w_min`; `dbpm_flagged`, "
         "`dbpm_memory`, `dbpm_mu`, `dbpm_sigma`.")),
    "loss": GroupInfo(
        "Losses", "the training objective (`infonce` by default).",
        ("Losses log `margin_mse_pairs` / `kl_pairs` (teacher-scored pairs distilled in the "
         "batch) and `margin_mse_batches_without_teacher` / `kl_batches_without_teacher` (so "
         "far: batches with nothing to distil, which contribute no gradient from that term), "
         "`triplet_violating`, `triplet_selected`, `triplet_queries_without_negative`, "
         "`nbpo_expected_false_negatives`, `nbpo_flip_rate`.",)),
    "encoder": GroupInfo("Encoders", "the model trained, and the starting model that miners, "
                         "guides and teachers copy by default."),
    "data": GroupInfo("Datasets", "the training pairs, the corpus and the evaluation split."),
    "module": GroupInfo("Training module", "the optimiser and the training step."),
    "trainer": GroupInfo("Trainers", "Lightning's Trainer: any `lightning.Trainer` argument "
                         "is a knob, e.g. `trainer.max_epochs=3`."),
    "logger": GroupInfo("Loggers", "where the metrics go besides `metrics.json`."),
    "eval": GroupInfo("Evaluation", "how and what the runs are scored on."),
    "cache": GroupInfo("Embedding cache", "frozen-weight embeddings kept on disk."),
    "paths": GroupInfo("Paths", "where datasets and caches live."),
    "poison": GroupInfo("Poisoning probe", "attacker passages and triggered queries planted "
                        "in the data, with attack metrics at every evaluation."),
    "experiment": GroupInfo("Presets", "several groups and keys set at once."),
    "hparams_search": GroupInfo("Hyper-parameter searches", "sweepers for `hnm train -m`."),
}
GROUP_ORDER = tuple(GROUPS)  # the order of hnm list and of the help


class ListError(Exception):
    """A group or option that does not exist, in one paragraph."""


# ---------------------------------------------------------------------------------------------
# reading the YAML files


@functools.cache
def conf_root() -> Path:
    from hnm.cli import config_dir

    return Path(config_dir())


_KEY = re.compile(r"^(\s*)([A-Za-z_][\w.-]*)\s*:(?=\s|$)(.*)$")


def _split_comment(rest: str) -> tuple[str, str | None, int]:
    """``value  # comment`` -> (value, comment, column of the ``#`` in ``rest``), ignoring
    ``#`` inside quotes."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1:].strip(), i
    return rest.strip(), None, -1


@dataclass
class _File:
    """One YAML file: its header comment lines, ``@package``, data, defaults list, and the
    comment on each key (on the key's line, or the comment lines right above it)."""

    path: Path
    header: list[str] = field(default_factory=list)
    package: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    defaults: list[Any] = field(default_factory=list)
    own: dict[tuple[str, ...], str] = field(default_factory=dict)


@functools.cache
def _read(path: Path) -> _File:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    out = _File(path, data={k: v for k, v in data.items() if k != "defaults"},
                defaults=list(data.get("defaults") or []))
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    inline: tuple[tuple[str, ...], int] | None = None  # a key's comment on its line, its column
    started = False
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            if not started and pending:
                out.header, started = pending, True
            pending, inline = [], None
            continue
        if stripped.startswith("#"):
            body = stripped[1:]
            body = body[1:] if body.startswith(" ") else body
            if body.startswith("@package"):
                out.package = body.split(None, 1)[1].strip() if " " in body else None
                continue
            if inline is not None and indent == inline[1]:  # going on under its line's comment
                out.own[inline[0]] += " " + body.strip()
                continue
            inline = None
            pending.append(line[line.index("#") + 1:].removeprefix(" ").rstrip())
            continue
        match = _KEY.match(line)
        inline = None
        if match is None:  # a list item or a continued value
            pending = []
            continue
        key_indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        if not started:  # the comment lines that open the file are its header
            started = True
            out.header, pending = pending, []
        while stack and stack[-1][0] >= key_indent:
            stack.pop()
        path_ = (*[k for _, k in stack], key)
        value, comment, column = _split_comment(rest)
        if pending:
            out.own[path_] = " ".join(p.strip() for p in pending)
            pending = []
        if comment:
            out.own[path_] = comment
            inline = (path_, match.start(3) + column)
        if not value:
            stack.append((key_indent, key))
    if not started and pending:  # a file of comments only
        out.header = pending
    return out


def _leaves(node: Any, at: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """The (dotted path, value) of every leaf; keys that start with ``_`` are Hydra's."""
    if isinstance(node, dict) and (node or not at):
        out: list[tuple[tuple[str, ...], Any]] = []
        for k, v in node.items():
            if not str(k).startswith("_"):
                out += _leaves(v, (*at, str(k)))
        return out
    return [(at, node)]


# ---------------------------------------------------------------------------------------------
# options


@dataclass
class Knob:
    key: str  # dotted, under the option's package
    default: Any
    meaning: str
    source: str | None  # None: the option's own file; else the file it comes from (shared/…)


@dataclass
class Option:
    group: str
    name: str
    package: str
    description: str
    details: list[str]  # the header's lines after the first ('' between paragraphs)
    tags: dict[str, str]
    target: str | None
    knobs: list[Knob]
    selects: list[str]  # groups an experiment preset chooses (override /encoder: tiny)
    includes: list[str]  # files of the group's subfolders it extends (shared/ranked, …)

    @property
    def paper(self) -> str:
        return self.tags.get("paper", "")

    @property
    def needs(self) -> str:
        return self.tags.get("needs", "")

    def own(self) -> list[Knob]:
        return [k for k in self.knobs if k.source is None]

    def inherited(self) -> list[Knob]:
        return [k for k in self.knobs if k.source is not None]


def groups() -> list[str]:
    """The groups a user chooses options of: every folder of ``conf/`` with YAML files, but
    ``hydra`` (Hydra's own) and the subfolders options extend (``miner/shared``)."""
    root = conf_root()
    found = {p.name for p in root.iterdir()
             if p.is_dir() and p.name != "hydra" and any(p.glob("*.yaml"))}
    return [g for g in GROUP_ORDER if g in found] + sorted(found - set(GROUP_ORDER))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_root() / group).glob("*.yaml"))


def shared_files(group: str) -> list[str]:
    """The files of ``group``'s subfolders (``shared/ranked``, …) that options extend."""
    base = conf_root() / group
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.glob("*/**/*.yaml"))


@dataclass
class _Composed:
    """What :func:`_compose` gathers: ``values`` (path -> value, in merge order), ``defined``
    (path -> the files that set it), the ``_target_``s of the option's level, the groups a
    preset selects and the files it extends."""

    values: dict[tuple[str, ...], Any] = field(default_factory=dict)
    defined: dict[tuple[str, ...], list[tuple[_File, tuple[str, ...]]]] = field(
        default_factory=dict)
    targets: list[str] = field(default_factory=list)
    selects: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


def _compose(group: str, name: str, at: tuple[str, ...], into: _Composed,
             depth: int = 0) -> None:
    """Merge ``group/name`` and its defaults list into ``into`` in Hydra's order."""
    if depth > 8:
        return
    f = _read(conf_root() / group / f"{name}.yaml")
    if not at and isinstance(f.data.get("_target_"), str):
        into.targets.append(f.data["_target_"])
    values, defined = into.values, into.defined
    order = list(f.defaults)
    if "_self_" not in order:
        order.append("_self_")  # Hydra 1.1+: a config's own keys win over its defaults
    for entry in order:
        if entry == "_self_":
            for path, value in _leaves(f.data):
                full = (*at, *path)
                for old in [p for p in values if p[:len(full)] == full or full[:len(p)] == p]:
                    del values[old]
                values[full] = value
                defined.setdefault(full, []).append((f, path))
        elif isinstance(entry, str):
            ref, _, package = entry.partition("@")
            folder, _, sub = ref.rpartition("/")
            sub_at = (at if package == "_here_" else (*at, *package.split(".")) if package
                      else (*at, *folder.split("/")) if folder else at)
            sub_group = f"{group}/{folder}" if folder else group
            into.includes.append(f"{sub_group}/{sub}")
            _compose(sub_group, sub, sub_at, into, depth + 1)
        elif isinstance(entry, dict):
            for k, v in entry.items():
                into.selects.append(f"{str(k).removeprefix('override').strip().lstrip('/')}={v}")


_ARG = re.compile(r"^( *)([\w*][\w, *]*?):(?:\s+(.*))?$")


@functools.cache
def _arg_docs(target: str) -> dict[str, str]:
    """``name -> text`` of the ``Args:`` entries of ``target``'s docstrings; the nearest class
    that documents a name wins (``k1, b: …`` documents both)."""
    from hnm.static_signature import docstrings_of

    out: dict[str, str] = {}
    for doc in docstrings_of(target):
        lines = doc.splitlines()
        start = next((i for i, ln in enumerate(lines) if ln.strip() == "Args:"), None)
        if start is None:
            continue
        base = len(lines[start]) - len(lines[start].lstrip())
        found: dict[str, list[str]] = {}
        current: list[str] = []
        entry_indent = None
        for ln in lines[start + 1:]:
            if not ln.strip():
                continue
            indent = len(ln) - len(ln.lstrip())
            if indent <= base:  # the end of the section
                break
            match = _ARG.match(ln)
            if match and indent == (entry_indent or indent):
                entry_indent = indent
                current = [n.strip() for n in match.group(2).split(",")]
                for n in current:
                    found[n] = [match.group(3) or ""]
            elif current:  # an entry going on over more lines
                for n in current:
                    found[n].append(ln.strip())
        for n, parts in found.items():
            out.setdefault(n, _clean_rst(" ".join(p for p in parts if p)))
    return {k: v for k, v in out.items() if v}


def _clean_rst(text: str) -> str:
    text = re.sub(r":\w+:`~?([\w.]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _meaning(path: tuple[str, ...], files: list[tuple[_File, tuple[str, ...]]],
             target: str | None) -> str:
    """A knob's meaning: its comment (the last file that has one), else its ``Args:`` entry,
    else the comment of the mapping it is in, else the entry of that mapping."""
    for f, p in reversed(files):
        if p in f.own:
            return f.own[p]
    if target:
        docs = _arg_docs(target)
        if path[0] in docs and len(path) == 1:
            return docs[path[0]]
    for f, p in reversed(files):
        for cut in range(len(p) - 1, 0, -1):
            if p[:cut] in f.own:
                return f.own[p[:cut]]
    if target and path[0] in _arg_docs(target):
        return _arg_docs(target)[path[0]]
    return ""


def _header(lines: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """(first line, the other lines, tags) of a header comment."""
    prose: list[str] = []
    tags: dict[str, str] = {}
    current = None
    for line in lines:
        match = re.match(r"^(\w+):\s*(.*)$", line)
        if match and match.group(1) in TAGS:
            current = match.group(1)
            tags[current] = match.group(2).strip()
        elif current is not None and line.startswith("  ") and line.strip():
            tags[current] = f"{tags[current]} {line.strip()}"
        else:
            current = None
            prose.append(line.rstrip())
    while prose and not prose[0].strip():
        prose.pop(0)
    first = prose.pop(0).strip() if prose else ""
    while prose and not prose[-1].strip():
        prose.pop()
    while prose and not prose[0].strip():
        prose.pop(0)
    return first, prose, tags


def _own_target(group: str, name: str) -> str | None:
    """The option's ``_target_`` when it is hnm's (its docstrings can be read)."""
    target = _read(conf_root() / group / f"{name}.yaml").data.get("_target_")
    return str(target) if isinstance(target, str) and target.startswith("hnm.") else None


def load(group: str, name: str) -> Option:
    """One option, composed (its knobs) and described (its header, the docstrings)."""
    if group not in groups():
        raise ListError(_no_group(group))
    if not (conf_root() / group / f"{name}.yaml").is_file():
        raise ListError(_no_option(group, name))
    f = _read(conf_root() / group / f"{name}.yaml")
    composed = _Composed()
    _compose(group, name, (), composed)
    full_target = composed.targets[-1] if composed.targets else None  # the last merged wins
    target = full_target if full_target and full_target.startswith("hnm.") else None
    base = conf_root() / group
    knobs = []
    for path, value in composed.values.items():
        files = composed.defined[path]
        source = None if files[-1][0] is f else str(
            files[-1][0].path.relative_to(base).with_suffix(""))
        knobs.append(Knob(".".join(path), value, _meaning(path, files, target), source))
    description, details, tags = _header(f.header)
    if not description and target:
        from hnm.static_signature import docstrings_of

        docs = docstrings_of(target)
        description = _clean_rst(docs[0].split("\n\n")[0].replace("\n", " ")) if docs else ""
    package = f.package or group.replace("/", ".")
    own_group = f"{group}/"
    return Option(group, name, package, description, details, tags, full_target, knobs,
                  composed.selects, [i.removeprefix(own_group) for i in composed.includes])


def load_shared(group: str, rel: str) -> Option:
    """A file that options extend (``miner``, ``shared/ranked``): its own keys only."""
    f = _read(conf_root() / group / f"{rel}.yaml")
    description, details, tags = _header(f.header)
    # the docstrings of a class that extends it (a base class documents the shared knobs)
    target = next((t for t in (_own_target(group, o) for o in options(group)
                               if rel in load(group, o).includes) if t), None)
    knobs = [Knob(".".join(p), v, _meaning(p, [(f, p)], target), None)
             for p, v in _leaves(f.data)]
    includes = [str(d) for d in f.defaults if isinstance(d, str) and d != "_self_"]
    return Option(group, rel, group, description, details, tags, None, knobs, [], includes)


def _no_group(group: str) -> str:
    return (f"there is no config group {group!r}; the groups are: {', '.join(groups())}. "
            "`hnm list` shows every option of every group")


def _no_option(group: str, name: str) -> str:
    return (f"there is no option {name!r} in group {group!r}; its options are: "
            f"{', '.join(options(group))}. `hnm list {group}` describes them")


# ---------------------------------------------------------------------------------------------
# commands: which groups they use, how an option is chosen


@functools.cache
def command_groups(command: str) -> dict[str, str | None]:
    """``group -> default option`` (None: no default) of the groups ``command`` uses: its
    primary config's defaults list and :data:`ADD_ONS`."""
    f = _read(conf_root() / f"{COMMANDS[command]}.yaml")
    out: dict[str, str | None] = {}
    for entry in f.defaults:
        if isinstance(entry, dict):
            for k, v in entry.items():
                k = str(k).removeprefix("override").strip().lstrip("/")
                if k != "hydra" and "/" not in k:
                    out[k] = None if v is None else str(v)
    for g in ADD_ONS.get(command, ()):
        out.setdefault(g, None)
    return out


def uses(group: str) -> list[str]:
    return [c for c in COMMANDS if group in command_groups(c)]


def chooser(group: str, command: str = "train") -> str:
    """``+sampler=`` or ``loss=``: the spelling Hydra takes in ``command`` (hnm takes both)."""
    groups_ = command_groups(command)
    return f"{group}=" if group in groups_ and group not in ADD_ONS.get(command, ()) \
        else f"+{group}="


def canonical_overrides(command: str, argv: list[str]) -> list[str]:
    """``+GROUP=X`` and ``GROUP=X`` for a group ``command`` uses, written the way its config
    takes it: ``GROUP=X`` where its defaults list names the group (``hnm mine miner=bm25``,
    ``loss=kl``), ``+GROUP=X`` where it is added (``hnm train +miner=bm25``). Hydra accepts
    only one of the two; hnm takes either. A value that is a config node
    (``+miner={_target_: …}``) is left as it is."""
    if command not in COMMANDS:
        return argv
    used = command_groups(command)
    added = set(ADD_ONS.get(command, ())) - preset_groups(argv)
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        name = key.removeprefix("+")
        if eq and name in used and not key.startswith("++") and not value.lstrip(
                ).startswith("{"):
            key = f"+{name}" if name in added else name
            arg = f"{key}={value}"
        out.append(arg)
    return out


def preset_groups(argv: list[str]) -> set[str]:
    """The groups an ``experiment=NAME`` preset on the command line already chooses (its
    defaults list names ``/GROUP: OPTION``): there ``GROUP=X`` replaces its choice."""
    out: set[str] = set()
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") != "experiment" or not value:
            continue
        f = conf_root() / "experiment" / f"{value}.yaml"
        try:
            defaults = yaml.safe_load(f.read_text()).get("defaults") or []
        except (OSError, AttributeError, yaml.YAMLError):
            continue  # Hydra reports a missing or broken preset itself
        for entry in defaults:
            if isinstance(entry, dict):
                out |= {k.removeprefix("override ").strip().lstrip("/") for k in entry}
    return out


def primary_header(command: str) -> tuple[str, list[str]]:
    f = _read(conf_root() / f"{COMMANDS[command]}.yaml")
    first, rest, _ = _header(f.header)
    return first, rest


def help_text(command: str) -> str:
    """What ``hnm COMMAND --help`` says before the composed config: the command's header
    comment and the groups it uses, each with its options (``$`` doubled for Hydra's
    ``string.Template``)."""
    command = str(command)
    if command not in COMMANDS:
        return ""
    first, rest = primary_header(command)
    lines = [first, *rest, ""]
    lines.append(f"== Config groups of hnm {command}: GROUP=OPTION (each option's knobs: "
                 "hnm list GROUP) ==")
    used = command_groups(command)
    width = max(len(g) for g in used) + 2
    for group in [g for g in groups() if g in used]:
        default = used[group]
        names = options(group)
        opts = [f"{o} (default)" if o == default and len(names) > 1 else o for o in names]
        extra = " (optional)" if default is None else ""
        lines += _wrap(", ".join(opts) + extra, 100, f"{group + ':':<{width}}", " " * width)
    return "\n".join(lines).replace("$", "$$")


# ---------------------------------------------------------------------------------------------
# rendering


def show(value: Any) -> str:
    """A default as it would be written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "''" if value == "" else value
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def short_paper(paper: str) -> str:
    """The citation without the titles in double quotes (``Author et al., Venue Year``)."""
    text = re.sub(r',?\s*"[^"]*"', "", paper)
    return re.sub(r"\s{2,}", " ", text).strip(" ,;")


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.color else text


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first.rstrip()]


def _prose(lines: list[str], width: int, indent: str) -> list[str]:
    """Header lines: plain lines joined into wrapped paragraphs, indented ones kept as they
    are (examples)."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.extend(_wrap(" ".join(para), width, indent, indent))
            para.clear()

    for line in lines:
        if not line.strip():
            flush()
            out.append("")
        elif line.startswith("  "):
            flush()
            out.append(indent + line)
        else:
            para.append(line.strip())
    flush()
    return out


def _knob_lines(knobs: list[Knob], width: int, indent: str) -> list[str]:
    names = [k.key for k in knobs]
    values = [show(k.default) for k in knobs]
    name_w = min(max(map(len, names), default=0), 28)
    value_w = min(max(map(len, values), default=0), 18)
    col = len(indent) + name_w + 2 + value_w + 2
    out = []
    for knob, name, value in zip(knobs, names, values):
        meaning = knob.meaning + (f" [{knob.source}]" if knob.source is not None else "")
        head = f"{indent}{name:<{name_w}}  {value:<{value_w}}  "
        if len(name) > name_w or len(value) > value_w:  # too wide: the meaning below
            room = max(width - len(indent) - len(name) - 2, 12)
            value = value if len(value) <= room else value[:room - 1] + "…"
            out.append(f"{indent}{name}  {value}")
            head = " " * col
        if meaning.strip():
            out.extend(_wrap(meaning.strip(), width, head, " " * col))
        elif not head.isspace():
            out.append(head.rstrip())
    return out


def _heading(name: str, text: str, width: int, style: _Style) -> list[str]:
    out = _wrap(f"{name}: {text}", width, "", "    ")
    out[0] = style.bold(name) + out[0][len(name):]
    return out


def render_option(opt: Option, width: int, style: _Style, full: bool) -> list[str]:
    """One option for the terminal; ``full``: with its details and every inherited knob."""
    out = _heading(opt.name, opt.description, width, style)
    pad = "    "
    if opt.paper:
        out += _wrap(opt.paper if full else short_paper(opt.paper), width, f"{pad}paper: ",
                     pad + "       ")
    if opt.needs:
        out += _wrap(opt.needs, width, f"{pad}needs: ", pad + "       ")
    if opt.selects:
        out.append(f"{pad}sets:  {', '.join(opt.selects)}")
    if full:
        if opt.details:
            out.append("")
            out += _prose(opt.details, width, pad)
        out.append("")
        out.append(f"{pad}choose: {chooser(opt.group)}{opt.name}   (in hnm "
                   f"{', '.join(uses(opt.group))})")
        if opt.target:
            out.append(f"{pad}class:  {opt.target}")
    knobs = opt.own() + opt.inherited() if full else opt.own()
    if knobs:
        where = "" if opt.package == "_global_" else f"{opt.package}."
        out.append(f"{pad}knobs ({where}KNOB=VALUE):")
        out += _knob_lines(knobs, width, pad + "  ")
    elif not opt.inherited():
        out.append(f"{pad}knobs: none")
    if not full and opt.inherited():
        below = " below" if all(i in shared_files(opt.group) for i in opt.includes) else ""
        out += _wrap(f"also the knobs of {', '.join(opt.includes)}{below} (all of them with "
                     f"their values: hnm list {opt.group}/{opt.name})", width, pad, pad + "  ")
    return out


def render_group(group: str, width: int, style: _Style) -> list[str]:
    info = GROUPS.get(group, GroupInfo(group, ""))
    how = chooser(group)
    head = f"{group}: {info.title} ({how}NAME in hnm {', '.join(uses(group))})"
    out = [style.bold(head) if style.color else head]
    if info.blurb:
        out += _wrap(info.blurb[0].upper() + info.blurb[1:], width, "", "")
    out.append("")
    for name in options(group):
        out += render_option(load(group, name), width, style, full=False)
        out.append("")
    for rel in shared_files(group):
        shared = load_shared(group, rel)
        out += _heading(rel, shared.description, width, style)
        out += _prose(shared.details, width, "    ")
        out.append(f"    knobs ({group}.KNOB=VALUE):")
        out += _knob_lines(shared.knobs, width, "      ")
        out.append("")
    for note in info.notes:
        out += _wrap(note, width, "", "")
        out.append("")
    return out


# the knob an option refuses to start without: its footer's example sets it
REQUIRED = {"negatives/gist": "negatives.gist.guide='{_target_: hnm.encoders.factory.hf_encoder,"
                              " name: PATH}'",
            "miner/ar2": "miner.ranker.model=PATH", "miner/from_file": "miner.path=FILE",
            "sampler/rs2": "trainer.max_epochs=10"}


def _footer(opt: Option | None = None) -> list[str]:
    """How to choose an option, change a knob and see the result."""
    if opt is None or opt.group not in command_groups("train"):
        choose, knob, package = "+sampler=ngame", "sampler.cluster_size=16", "sampler"
    else:
        choose = f"{chooser(opt.group)}{opt.name}"
        ranked = [k for k in opt.own() + opt.inherited() if not isinstance(k.default, bool)
                  and isinstance(k.default, (int, float))]
        first = next(iter(ranked or opt.own() or opt.knobs), None)
        where = "" if opt.package == "_global_" else f"{opt.package}."
        knob = f"{where}{first.key}={show(first.default)}" if first else ""
        knob = REQUIRED.get(f"{opt.group}/{opt.name}", knob)
        package = opt.package
    return ["Choose an option and set a knob:  " + f"hnm train {choose} {knob}".rstrip(),
            f"See the composed config:          hnm train {choose} --cfg job --package {package}"]


# ---------------------------------------------------------------------------------------------
# Markdown (docs/strategies.md)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_prose(lines: list[str]) -> list[str]:
    out: list[str] = []
    para: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if para:
            out.extend([" ".join(para), ""])
            para.clear()
        if code:
            out.extend(["```", *code, "```", ""])
            code.clear()

    for line in lines:
        if not line.strip():
            flush()
        elif line.startswith("  "):
            if para:
                flush()
            code.append(line[2:])
        else:
            if code:
                flush()
            para.append(line.strip())
    flush()
    return out


def _md_knobs(knobs: list[Knob]) -> list[str]:
    rows = ["| knob | default | meaning |", "|---|---|---|"]
    rows += [f"| `{k.key}` | `{_md(show(k.default))}` | {_md(k.meaning) or '—'} |" for k in knobs]
    return [*rows, ""]


def markdown(groups_: tuple[str, ...] = STRATEGY_GROUPS) -> str:
    """docs/strategies.md: the strategy groups, their options and knobs."""
    out = ["# Strategies", "",
           "<!-- Generated by `hnm list --markdown > docs/strategies.md` from conf/ (each "
           "option's header comment and the comments on its keys) and the strategy classes' "
           "docstrings: edit those and regenerate; tests/test_catalog.py fails when this file "
           "differs. -->", "",
           "Every strategy is one class (its docstring cites the paper and says where it "
           "departs from it), one YAML and one algorithmic unit test. The same text in a "
           "terminal: `hnm list`, `hnm list miner`, `hnm list miner/ance`. Choose an option "
           "and change its knobs on the command line, e.g. `hnm train +sampler=ngame "
           "sampler.cluster_size=16` (`loss=kl`: the loss group always has one); see the "
           "composed result with `hnm train +sampler=ngame --cfg job --package sampler`.", ""]
    for group in groups_:
        info = GROUPS[group]
        how = chooser(group)
        out += [f"## {info.title} (`{how}NAME`)", "", info.blurb[0].upper() + info.blurb[1:],
                "", "| option | what it does | paper | needs |", "|---|---|---|---|"]
        loaded = [load(group, n) for n in options(group)]
        for opt in loaded:
            out.append(f"| `{how}{opt.name}` | {_md(opt.description)} | "
                       f"{_md(short_paper(opt.paper)) or NO_PAPER} | {_md(opt.needs) or '—'} |")
        out.append("")
        for opt in loaded:
            out += [f"### `{how}{opt.name}`", "", _md(opt.description), ""]
            out += _md_prose(opt.details)
            facts = [f"- Paper: {_md(opt.paper) or NO_PAPER}"]
            if opt.needs:
                facts.append(f"- Needs: {_md(opt.needs)}")
            if opt.target:
                facts.append(f"- Class: `{opt.target}`")
            out += [*facts, ""]
            where = f"{opt.package}."
            if opt.own():
                out.append(f"Knobs (`{where}KNOB=VALUE`):")
                out.append("")
                out += _md_knobs(opt.own())
            if opt.inherited():
                sources = ", ".join(f"`{i}`" for i in opt.includes)
                listed = ", ".join(f"`{k.key}`" for k in opt.inherited())
                out += [f"Shared knobs (from {sources}, below): {listed}.", ""]
            if not opt.knobs:
                out += ["No knobs.", ""]
        for rel in shared_files(group):
            shared = load_shared(group, rel)
            out += [f"### Shared: `{group}/{rel}`", "", _md(shared.description), ""]
            out += _md_prose(shared.details)
            if shared.includes:
                out += [f"Extends: {', '.join(f'`{i}`' for i in shared.includes)}.", ""]
            out += _md_knobs(shared.knobs)
        for note in info.notes:
            out += [note, ""]
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# hnm list


def _width(stream: Any) -> int:
    if hasattr(stream, "isatty") and stream.isatty():
        return max(60, min(shutil.get_terminal_size((100, 24)).columns, 100))
    return 100


def _color(stream: Any) -> bool:
    import os

    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ \
        and os.environ.get("TERM") != "dumb"


USAGE = """usage: hnm list [GROUP | GROUP/OPTION …] [--short] [--markdown]

Every option of every config group: a one-line description, its paper and its knobs with
their defaults and meaning. GROUP lists one group (hnm list sampler), GROUP/OPTION one option
with its details and every knob it inherits (hnm list miner/ance).
  --short      one line per option
  --markdown   Markdown, as in docs/strategies.md (the strategy groups when no GROUP is given)"""


def _select(args: list[str]) -> list[tuple[str, str | None]]:
    chosen: list[tuple[str, str | None]] = []
    for arg in args:
        text = arg.strip().strip("/").removeprefix("+")
        group, _, name = text.partition("/")
        if "=" in text:
            group, _, name = text.partition("=")
        if group not in groups():
            raise ListError(_no_group(group))
        if name and name not in options(group):
            raise ListError(_no_option(group, name))
        chosen.append((group, name or None))
    return chosen


def run(args: list[str], stream: Any = None) -> None:
    stream = stream or sys.stdout
    flags = {a for a in args if a.startswith("-")}
    unknown = flags - {"--short", "--markdown", "-h", "--help"}
    if unknown:
        raise ListError(f"unknown flag {sorted(unknown)[0]!r} of hnm list; it takes GROUP, "
                        "GROUP/OPTION, --short and --markdown")
    if flags & {"-h", "--help"}:
        print(USAGE, file=stream)
        return
    chosen = _select([a for a in args if not a.startswith("-")])
    if "--markdown" in flags:
        if any(name for _, name in chosen):
            raise ListError("--markdown writes whole groups: give GROUP, not GROUP/OPTION")
        stream.write(markdown(tuple(g for g, _ in chosen) or STRATEGY_GROUPS))
        return
    width, style = _width(stream), _Style(_color(stream))
    lines: list[str] = []
    if "--short" in flags:
        for group in [g for g, _ in chosen] or groups():
            names = options(group)
            name_w = max(map(len, names)) + 2
            lines.append(style.bold(f"{group}  ({chooser(group)}NAME)"))
            for name in names:
                opt = load(group, name)
                paper = short_paper(opt.paper)
                text = opt.description + (f" — {paper}" if paper and not paper.startswith(
                    NO_PAPER) else "")
                lines += _wrap(text, width, f"  {name:<{name_w}}", " " * (name_w + 2))
            lines.append("")
    else:
        last = None
        for group, option in chosen or [(g, None) for g in groups()]:
            if option:
                last = load(group, option)
                lines += render_option(last, width, style, full=True)
                lines.append("")
            else:
                lines += render_group(group, width, style)
        lines += _footer(last if len(chosen) == 1 else None)
    stream.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    """``hnm list …``: a group or option that does not exist is one paragraph, exit status 2."""
    try:
        run(list(sys.argv[1:] if argv is None else argv))
    except ListError as err:
        print(f"hnm: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
