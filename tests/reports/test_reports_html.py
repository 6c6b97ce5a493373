"""The HTML report is one self-contained file: inline SVG figures, no scripts, nothing fetched."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from reports.compare import compare
from reports.html import render_html
from reports.schema import Result


@pytest.fixture(scope="module")
def runs(make_result) -> list[Result]:  # type: ignore[no-untyped-def]
    return [
        make_result(0, timeline=True, recovery=True),
        make_result(1, topology="tp4-pp4", tp=4, pp=4, speed=0.8),
    ]


@pytest.fixture(scope="module")
def page(runs: list[Result]) -> str:
    return render_html(runs, ["tp8-pp2", "tp4-pp4"], compare(runs, ["tp8-pp2", "tp4-pp4"], {"tpot_ms": 40}))


def test_the_page_fetches_nothing_and_runs_no_script(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "<link" not in page and "<img" not in page and "@import" not in page
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', page):
        assert value.startswith("#"), f"{attr}={value}"
    assert not re.search(r"url\((?!#)", page)


def test_every_figure_is_an_inline_svg_with_ids_unique_in_the_page(page: str) -> None:
    labels = re.findall(r'<svg role="img" aria-label="([^"]+)"', page)
    assert labels == [
        "throughput-latency",
        "per-gpu",
        "distributions-0",
        "distributions-1",
        "timeline-0",
        "timeline-1",
        "recovery",
    ]
    ids = Counter(re.findall(r'\bid="([^"]+)"', page))
    assert [i for i, n in ids.items() if n > 1] == []
    for ref in set(re.findall(r"url\(#([^)]+)\)", page)) | set(re.findall(r'href="#([^"]+)"', page)):
        assert ref in ids, ref


def test_figures_without_data_are_left_out(make_result) -> None:  # type: ignore[no-untyped-def]
    bare = make_result(3)
    bare = bare.model_copy(
        update={"results": [lv.model_copy(update={"started_at": None}) for lv in bare.results]}
    )
    page = render_html([bare])
    assert 'aria-label="recovery"' not in page and 'id="recovery"' not in page
    assert 'aria-label="timeline-0"' not in page
    assert 'aria-label="per-gpu"' in page and 'aria-label="distributions-0"' in page
    assert 'id="comparison"' not in page  # one run and no SLO: nothing to compare


def test_the_comparison_and_formulas_are_on_the_page(page: str) -> None:
    assert "Best setting under TPOT p99 &lt;= 40 ms, error rate &lt;= 1.0%:" in page
    assert "Pareto frontier: output tokens/s per GPU against TPOT p99" in page
    assert "TPOT = (last token time - first token time) / (output tokens - 1)" in page
    assert "first token-carrying chunk - request send time" in page


def test_names_from_result_files_are_escaped(make_result) -> None:  # type: ignore[no-untyped-def]
    page = render_html([make_result(0)], ['<b onmouseover="x">run</b>'])
    assert "<b onmouseover" not in page and "&lt;b onmouseover=&quot;x&quot;&gt;run&lt;/b&gt;" in page


def test_the_same_results_give_the_same_page(runs: list[Result], page: str) -> None:
    again = render_html(runs, ["tp8-pp2", "tp4-pp4"], compare(runs, ["tp8-pp2", "tp4-pp4"], {"tpot_ms": 40}))
    assert again == page
