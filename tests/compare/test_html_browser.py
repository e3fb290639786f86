"""compare.html in a real headless Chromium, from a file:// URL with no network: no console
error, one trace per group in the plots, and choosing a query (from the list, and by clicking
its point in the scatter) shows its text, its relevant documents and every group's top 10."""

from __future__ import annotations

import pytest

from hnm.compare.html import write_html
from tests.compare import browser
from tests.compare.html_fixture import HOSTILE, synthetic_report

pytestmark = pytest.mark.slow

N_GROUPS = 4


@pytest.fixture(scope="module")
def report():
    return synthetic_report(n_groups=N_GROUPS, n_seeds=3, n_queries=700, n_docs=3000)


@pytest.fixture(scope="module")
def driver(report, tmp_path_factory):
    reason = browser.missing()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.support.ui import WebDriverWait

    page = write_html(report, tmp_path_factory.mktemp("html") / "compare.html")
    with browser.chromium() as d:
        d.get(page.as_uri())
        WebDriverWait(d, 60).until(lambda x: x.execute_script(
            "return !!document.querySelector('#pq-detail .pq-qid')"))
        yield d


def _detail(driver) -> dict:
    return driver.execute_script("""
        var d = document.getElementById('pq-detail');
        var cols = Array.from(d.querySelectorAll('.pq-col')).map(function (c) { return {
            group: c.getAttribute('data-group'),
            docs: Array.from(c.querySelectorAll('.pq-top10 li .docid')).map(function (e) { return e.textContent; }),
            rel: Array.from(c.querySelectorAll('.pq-top10 li.rel .docid')).map(function (e) { return e.textContent; }),
            value: c.querySelector('.pq-col-value').textContent}; });
        return {qid: d.querySelector('.pq-qid').textContent, text: d.querySelector('.pq-text').textContent,
                relevant: Array.from(d.querySelectorAll('.pq-rel li')).map(function (e) { return e.textContent; }),
                cols: cols};""")


def _check_query(driver, report, i: int) -> None:
    q = report["per_query"]["queries"][i]
    top = report["per_query"]["top"]
    shown = _detail(driver)
    assert shown["qid"] == q["qid"] and shown["text"] == q["text"]
    for doc in q["relevant"]:
        assert any(doc in r and report["per_query"]["docs"][doc] in r for r in shown["relevant"])
    assert sorted(c["group"] for c in shown["cols"]) == [str(g) for g in range(1, N_GROUPS + 1)]
    for col in shown["cols"]:
        expected = top[col["group"]]["lists"][q["qid"]][:10]
        assert col["docs"] == expected
        assert col["rel"] == [d for d in expected if d in q["relevant"]]
        assert f"{q['values'][col['group']]:.4f}" in col["value"]


def _severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_page_loads_without_console_errors(driver):
    assert _severe(driver) == []
    assert driver.execute_script("return document.querySelectorAll('script').length") == 3
    assert "split: test" in driver.title


def test_plots_have_one_trace_per_group(driver, report):
    n_forest = driver.execute_script(
        "return document.querySelectorAll('#forest .js-plotly-plot').length")
    assert n_forest == len(report["metrics"])
    for i in range(n_forest):
        groups = driver.execute_script(
            f"return document.getElementById('forest-{i}').data.map(t => t.meta.group)")
        assert groups == list(range(2, N_GROUPS + 1))
    curves = driver.execute_script(
        "return document.getElementById('curves-plot').data.map(t => t.meta.group)")
    assert curves == list(range(1, N_GROUPS + 1))
    assert driver.execute_script("return document.getElementById('losses-plot').data.length") \
        == 2 * (N_GROUPS - 1)


def test_choosing_a_query_in_the_list_shows_its_lists(driver, report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    queries = report["per_query"]["queries"]
    top = report["per_query"]["top"]["1"]["lists"]
    marked = next(i for i, q in enumerate(queries) if i and set(q["relevant"]) & set(top[q["qid"]]))
    search = driver.find_element(By.ID, "pq-search")
    search.clear()
    search.send_keys(queries[marked]["qid"])
    Select(driver.find_element(By.ID, "pq-list")).select_by_value(str(marked))
    _check_query(driver, report, marked)
    assert _detail(driver)["cols"][0]["rel"]  # the baseline's list marks a relevant document
    search.clear()
    search.send_keys("x < 0 && y > 1")
    Select(driver.find_element(By.ID, "pq-list")).select_by_value("0")
    _check_query(driver, report, 0)
    assert HOSTILE in _detail(driver)["text"]
    assert _severe(driver) == []
    browser.full_page_screenshot(driver, tmp_path / "compare_query.png")


def test_clicking_a_point_in_the_scatter_shows_that_query(driver, report):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    queries = report["per_query"]["queries"]
    coords = [(q["values"]["1"], q["values"]["2"]) for q in queries]
    unique = next(i for i, (x, y) in enumerate(coords) if i and all(
        j == i or abs(x - u) + abs(y - v) > 0.05 for j, (u, v) in enumerate(coords)))
    driver.execute_script("document.getElementById('pq-scatter').scrollIntoView()")
    points = driver.find_elements(By.CSS_SELECTOR, "#pq-scatter .scatterlayer .trace .point")
    point = next(p for p in points
                 if driver.execute_script("return arguments[0].__data__.i", p) == unique)
    ActionChains(driver).move_to_element(point).click().perform()
    _check_query(driver, report, unique)
    selected = driver.execute_script("return document.getElementById('pq-scatter').data[1].x")
    assert selected == [coords[unique][0]]
    assert _severe(driver) == []


def test_the_group_selector_redraws_the_scatter(driver, report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "pq-group")).select_by_value("3")
    ys = driver.execute_script("return Array.from(document.getElementById('pq-scatter').data[0].y)")
    assert ys == [q["values"]["3"] for q in report["per_query"]["queries"]]
    assert driver.find_element(By.ID, "pq-summary").text.startswith("#3 ")
    assert driver.execute_script(
        "return document.querySelector('#pq-detail .pq-col:nth-child(2)').dataset.group") == "3"
    assert _severe(driver) == []
