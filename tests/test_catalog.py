"""``hnm list`` and docs/strategies.md: every option described, every knob of conf/ documented,
the same knobs and defaults as Hydra composes; each command's --help names only its groups;
``+GROUP=X`` and ``GROUP=X`` alike."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hnm import catalog
from hnm.cli import config_dir
from hnm.cli import main as cli_main

CONF = Path(config_dir())
DOCS = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"
ALL = [(g, o) for g in catalog.groups() for o in catalog.options(g)]
STRATEGIES = [(g, o) for g, o in ALL if g in catalog.STRATEGY_GROUPS]
# a preset (@package _global_, `override /group`) composes only inside a command's config
GLOBAL = {"experiment", "hparams_search"}


def _flat(node: object, at: str = "") -> dict[str, object]:
    if isinstance(node, dict) and node:
        out: dict[str, object] = {}
        for k, v in node.items():
            if not str(k).startswith("_"):
                out.update(_flat(v, f"{at}.{k}" if at else str(k)))
        return out
    return {at: node} if at else {}


def _composed(group: str, name: str) -> dict[str, object]:
    """The option's keys and values as Hydra composes them (interpolations unresolved)."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+{group}={name}"])
    package = catalog.load(group, name).package
    node = OmegaConf.select(cfg, package)
    return _flat(OmegaConf.to_container(node, resolve=False))


def _list(*args: str) -> str:
    out = io.StringIO()
    catalog.run(list(args), stream=out)
    return out.getvalue()


# --- every option described -------------------------------------------------------------------


@pytest.mark.parametrize(("group", "name"), ALL, ids=[f"{g}/{o}" for g, o in ALL])
def test_every_option_has_a_one_line_description(group: str, name: str) -> None:
    opt = catalog.load(group, name)
    assert opt.description.strip(), f"conf/{group}/{name}.yaml: no header comment"
    assert len(opt.description) <= 96, f"{group}/{name}: one line, please: {opt.description}"


@pytest.mark.parametrize(("group", "name"), STRATEGIES, ids=[f"{g}/{o}" for g, o in STRATEGIES])
def test_every_strategy_cites_its_paper_and_explains_its_knobs(group: str, name: str) -> None:
    opt = catalog.load(group, name)
    short = catalog.short_paper(opt.paper)
    assert short, f"conf/{group}/{name}.yaml: no `# paper:` line (— for none)"
    assert short.startswith(catalog.NO_PAPER) or re.search(r"\b(19|20)\d\d\b", short), short
    assert opt.target and opt.target.startswith("hnm."), opt.target
    unexplained = [k.key for k in opt.knobs if not k.meaning.strip()]
    assert not unexplained, f"{group}/{name}: knobs without a meaning: {unexplained}"


def test_every_group_is_titled_and_used_by_train() -> None:
    for group in catalog.groups():
        assert group in catalog.GROUPS, f"conf/{group}/: add it to hnm.catalog.GROUPS"
        assert group in catalog.command_groups("train"), (
            f"conf/{group}/: neither in conf/train.yaml's defaults nor in catalog.ADD_ONS")


def test_commands_name_their_primary_configs() -> None:
    entry = (Path(catalog.__file__).parent / "entry.py").read_text(encoding="utf-8")
    for config in catalog.COMMANDS.values():
        assert f'config_name="{config}"' in entry


# --- the knobs are Hydra's --------------------------------------------------------------------


@pytest.mark.parametrize(("group", "name"), [a for a in ALL if a[0] not in GLOBAL],
                         ids=[f"{g}/{o}" for g, o in ALL if g not in GLOBAL])
def test_knobs_and_defaults_are_what_hydra_composes(group: str, name: str) -> None:
    listed = {k.key: k.default for k in catalog.load(group, name).knobs}
    assert listed == _composed(group, name)


@pytest.mark.parametrize("group", sorted(GLOBAL))
def test_presets_set_what_they_list(group: str) -> None:
    for name in catalog.options(group):
        opt = catalog.load(group, name)
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[f"{group}={name}"], return_hydra_config=True)
        flat = _flat(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
        for knob in opt.knobs:
            assert flat[knob.key] == knob.default, knob.key
        for chosen in opt.selects:
            key, value = chosen.split("=")
            assert OmegaConf.select(cfg, f"hydra.runtime.choices.{key}") == value


# --- docs/strategies.md -----------------------------------------------------------------------


def test_strategies_md_is_the_generated_text() -> None:
    assert DOCS.read_text(encoding="utf-8") == catalog.markdown(), (
        "docs/strategies.md differs from conf/ and the docstrings: regenerate it with "
        "`hnm list --markdown > docs/strategies.md`")


def _sections(text: str) -> dict[str, str]:
    """``### `+group=name``` heading -> its text, up to the next heading."""
    parts = re.split(r"^(#{2,3} .*)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize(("group", "name"), STRATEGIES, ids=[f"{g}/{o}" for g, o in STRATEGIES])
def test_strategies_md_names_every_knob_of_conf(group: str, name: str) -> None:
    """Every key of the option as Hydra composes it (the shared knobs of a miner included) is
    named in the option's own section."""
    sections = _sections(DOCS.read_text(encoding="utf-8"))
    heading = next((h for h in sections if re.fullmatch(rf"### `\+?{group}={name}`", h)), None)
    assert heading, f"docs/strategies.md has no section for {group}/{name}"
    missing = [k for k in _composed(group, name) if f"`{k}`" not in sections[heading]]
    assert not missing, f"docs/strategies.md, {heading}: missing knobs {missing}"


# --- hnm list ---------------------------------------------------------------------------------


def test_list_one_option_shows_paper_knobs_and_how_to_choose() -> None:
    text = _list("sampler/ngame")
    assert "Dahiya et al." in text and "WSDM 2023" in text
    for knob in ("cluster_size", "refresh_every", "n_iter", "warmup_epochs"):
        assert knob in text
    assert "+sampler=ngame sampler.cluster_size=8" in text
    assert "--cfg job --package sampler" in text
    assert "\033[" not in text  # not a terminal: no colour codes


def test_list_a_miner_shows_the_shared_knobs_with_their_values() -> None:
    text = _list("miner/ance")
    for knob in ("refresh_every_fraction  0.25", "num_negatives", "range_max", "schedule_width"):
        assert knob in text


def test_list_everything_fits_100_columns() -> None:
    text = _list()
    for group, name in ALL:
        assert f"\n{name}: " in text, f"{group}/{name}"
    too_wide = [line for line in text.splitlines() if len(line) > 100]
    assert not too_wide, too_wide[:3]
    short = _list("--short")
    assert all(f"  {name} " in short for _, name in ALL)


@pytest.mark.parametrize(("arg", "expected"), [
    ("samplr", "there is no config group 'samplr'; the groups are: sampler, miner"),
    ("sampler/ngme", "there is no option 'ngme' in group 'sampler'; its options are: ngame"),
])
def test_list_unknown_group_or_option(arg: str, expected: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["list", arg])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_list_imports_nothing_heavy() -> None:
    code = ("import io, sys, contextlib\nfrom hnm.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['list'])\n"
            "heavy = {'torch', 'lightning', 'hydra', 'transformers'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


# --- each command's --help --------------------------------------------------------------------


def _groups_in_help(text: str) -> set[str]:
    block = text.split("== Config groups", 1)[1].split("\n\n", 1)[0]
    return {m.group(1) for m in re.finditer(r"^(\w+):", block, flags=re.M)}


@pytest.mark.parametrize(("command", "expected"), [
    ("eval", {"data", "encoder", "eval", "paths", "cache", "experiment"}),
    ("mine", {"data", "encoder", "miner", "trainer", "logger", "eval", "paths", "cache",
              "experiment"}),
])
def test_help_names_only_the_groups_the_command_uses(command: str, expected: set[str]) -> None:
    text = catalog.help_text(command)
    assert _groups_in_help(text) == expected
    assert "hnm list GROUP" in text


def test_eval_help_says_what_model_accepts() -> None:
    text = catalog.help_text("eval")
    for form in ("model=RUN_FOLDER", "model=PATH", "model=NAME", "model=bm25", "model=null"):
        assert form in text


@pytest.mark.parametrize("command", ["eval", "mine"])
def test_help_through_hydra(command: str, tmp_path: Path) -> None:
    """The template in conf/hydra/default.yaml resolves to the command's own text."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "hnm.cli", command, "--help"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert catalog.help_text(command).replace("$$", "$") in out.stdout
    assert not re.search(r"^(sampler|negatives|loss|hparams_search):", out.stdout, re.M)
    assert "== Config (" in out.stdout and "hnm list" in out.stdout


# --- +GROUP=X and GROUP=X ---------------------------------------------------------------------


@pytest.mark.parametrize(("command", "given", "expected"), [
    ("mine", ["+miner=bm25"], ["miner=bm25"]),
    ("mine", ["miner=bm25"], ["miner=bm25"]),
    ("train", ["miner=bm25"], ["+miner=bm25"]),
    ("train", ["+miner=bm25"], ["+miner=bm25"]),
    ("train", ["sampler=ngame,rs2", "+loss=kl"], ["+sampler=ngame,rs2", "loss=kl"]),
    ("train", ["negatives=[gist,queue]"], ["+negatives=[gist,queue]"]),
    ("train", ["+miner={_target_: x.Y}", "miner.range_max=10", "seed=1"],
     ["+miner={_target_: x.Y}", "miner.range_max=10", "seed=1"]),
    ("eval", ["+encoder=tiny", "miner=bm25"], ["encoder=tiny", "miner=bm25"]),
])
def test_canonical_overrides(command: str, given: list[str], expected: list[str]) -> None:
    assert catalog.canonical_overrides(command, given) == expected


@pytest.mark.parametrize("command", ["train", "mine"])
@pytest.mark.parametrize("spelling", ["+miner=bm25", "miner=bm25"])
def test_both_miner_spellings_compose(command: str, spelling: str) -> None:
    overrides = catalog.canonical_overrides(command, [spelling])
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose(catalog.COMMANDS[command], overrides=overrides)
    assert cfg.miner._target_ == "hnm.miners.bm25.BM25Miner"
