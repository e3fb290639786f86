"""compare.html without a browser: self-contained, the data embedded and recoverable, every
report text escaped, the split named, and figures with one trace per group."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest

from hnm.compare.html import json_script, write_html
from hnm.compare.html_figures import colors, curves_figure, losses_figure
from hnm.compare.html_forest import forest_figures
from tests.compare.html_fixture import HOSTILE, synthetic_report


class Scripts(HTMLParser):
    """Collects each <script>'s attributes and text, and every src/href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self.links: list[str] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "script":
            self._open = attrs
            self.scripts.append((attrs, ""))

    def handle_data(self, data):
        if self._open is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)

    def handle_endtag(self, tag):
        if tag == "script":
            self._open = None


@pytest.fixture(scope="module")
def report():
    return synthetic_report(n_groups=4, n_seeds=3, n_queries=40, n_docs=200)


@pytest.fixture(scope="module")
def page(report, tmp_path_factory):
    path = write_html(report, tmp_path_factory.mktemp("html") / "compare.html")
    return path.read_text(encoding="utf-8")


def test_page_is_self_contained_with_plotly_inline(page):
    from plotly.offline import get_plotlyjs

    parsed = Scripts()
    parsed.feed(page)
    assert [a.get("type") for a, _ in parsed.scripts] == [
        "application/json", "text/javascript", "text/javascript"]
    assert get_plotlyjs()[:2000] in parsed.scripts[1][1]
    assert all(not link.startswith(("http:", "https:", "//")) for link in parsed.links)
    assert "<script src" not in page and "<link" not in page


def test_data_round_trips_through_the_json_block(page, report):
    parsed = Scripts()
    parsed.feed(page)
    data = json.loads(parsed.scripts[0][1])
    assert data["report"] == report
    assert data["split"] == "test" and len(data["figures"]) == 3 + 2


def test_hostile_text_is_escaped_everywhere(page, report):
    assert HOSTILE in report["per_query"]["queries"][0]["text"]
    assert "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    block = json_script("x", {"t": HOSTILE, "u": "a\u2028b"})
    assert "<" not in block[len('<script type="application/json" id="x">'): -len("</script>")]
    assert json.loads(block.split(">", 1)[1].rsplit("<", 1)[0])["t"] == HOSTILE


def test_split_is_named_and_dev_cannot_pass_for_test(tmp_path):
    test = write_html(synthetic_report(n_queries=5, n_docs=20), tmp_path / "t.html").read_text()
    assert "split: test" in test and "split-is-test" in test and "<title>" in test
    dev = synthetic_report(n_queries=5, n_docs=20, split="dev")
    text = write_html(dev, tmp_path / "d.html").read_text()
    assert "split: dev (not test)" in text and "split-is-other" in text
    assert "do not report them as test results" in text
    assert "split: dev" in text.split("</title>")[0]


def test_minimal_report_and_odd_values_still_render(tmp_path):
    minimal = {"title": "t", "split": "test", "groups": [{"number": 1, "label": "a"}]}
    text = write_html(minimal, tmp_path / "m.html").read_text()
    assert "no per-query data" in text and "no learning curves" in text
    odd = synthetic_report(n_queries=5, n_docs=20)
    odd["forest"][0].update(p=float("nan"), seed_deltas=np.array([0.01, 0.02]), mde=np.float32(1))
    odd["curves"] = {"groups": []}
    odd.pop("per_query")
    text = write_html(odd, tmp_path / "o.html").read_text()
    block = text.split('id="hnm-data">', 1)[1].split("</script>", 1)[0]
    assert "NaN" not in block and json.loads(block)["report"]["forest"][0]["p"] is None


def test_forest_has_one_trace_per_group_labelled_at_its_row(report):
    figs = forest_figures(report, "test", colors(report["groups"]))
    labels = {g["number"]: g["label"] for g in report["groups"]}
    assert [(f["metric"], f["dataset"]) for f in figs] == [(m, "stdlib_code")
                                                          for m in report["metrics"]]
    for f in figs:
        data, ticks = f["figure"]["data"], f["figure"]["layout"]["yaxis"]
        assert [t["meta"]["group"] for t in data] == [2, 3, 4]
        for trace in data:
            row = trace["y"][[i for i, s in enumerate(trace["marker"]["size"]) if s == 13][0]]
            tick = ticks["ticktext"][ticks["tickvals"].index(row)]
            assert tick.startswith(f"#{trace['meta']['group']} ")
            assert labels[trace["meta"]["group"]][:10] in tick
            hover = trace["hovertext"][trace["marker"]["size"].index(13)]
            assert "minimum detectable Δ (80% power)" in hover and "seeds needed" in hover
        notes = [a["text"] for a in f["figure"]["layout"]["annotations"]]
        assert sum(n.replace("<b>", "").startswith("p=") and "Holm p=" in n for n in notes) == 3
        assert len(max(notes, key=len)) <= 40  # fits the right margin (the axis names the test)


def test_forest_clips_a_far_zero_shot_to_the_edge_with_its_value(report):
    fig = forest_figures(report, "test", colors(report["groups"]))[0]["figure"]
    lo, hi = fig["layout"]["xaxis"]["range"]
    for trace in fig["data"]:
        xs = [x for x in trace["x"] if x is not None]
        assert all(lo <= x <= hi for x in xs)
        assert any("zero-shot -0.0530" in t for t in trace["text"])
        assert math.isclose(min(xs), lo, abs_tol=0.02 * (hi - lo))


def test_curves_and_losses(report):
    c = colors(report["groups"])
    curves = curves_figure(report, c)
    assert [t["meta"]["group"] for t in curves["data"]] == [1, 2, 3, 4]
    assert {s["name"] for s in curves["layout"]["shapes"]} == {f"band-{g}" for g in range(1, 5)}
    losses = losses_figure(report, c)
    names = [t["name"] for t in losses["data"]]
    assert len(names) == 6 and sum("(baseline)" in n for n in names) == 3
    assert curves_figure({"curves": {"groups": []}}, c) is None


def test_forest_and_help_name_the_interval_of_the_test_shown(report, page):
    """The CI drawn is the test's (t over queries and seeds in hnm compare, the fixture's
    paired t-test): the axis and the help text name that test, never a bootstrap."""
    for f in forest_figures(report, "test", colors(report["groups"])):
        title = f["figure"]["layout"]["xaxis"]["title"]["text"]
        assert "bootstrap" not in title and "paired t-test" in title, title
    assert "bootstrap" not in page
