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


def test_the_load_sent_and_the_ttft_by_turn_are_on_the_page_as_in_the_markdown(make_result) -> None:  # type: ignore[no-untyped-def]
    """The workload's own tables (tokens asked against served, the prefix-cache hit rate, TTFT per turn) are in
    both renderings of a result, not in the Markdown only."""
    from reports.markdown import render_markdown
    from reports.schema import Distribution, InputLengthCheck, PrefixCacheView, TurnLatency

    result = make_result(0)
    first = result.results[0]
    metrics = first.metrics.model_copy(
        update={
            "input_lengths": InputLengthCheck(
                requests=16, requested_mean=96.0, served_mean=96.0, relative_error=0.0, within_tolerance=True
            ),
            "prefix_cache": PrefixCacheView(queries=1536, hits=672, hit_rate=0.4375, shared_fraction=0.625),
            "ttft_by_turn": [
                TurnLatency(
                    turn=1, prompt_tokens_mean=96, ttft_ms=Distribution(mean=812.0, p90=900.0, count=8)
                ),
                TurnLatency(
                    turn=2, prompt_tokens_mean=230, ttft_ms=Distribution(mean=931.0, p90=990.0, count=8)
                ),
            ],
        }
    )
    result = result.model_copy(
        update={"results": [first.model_copy(update={"metrics": metrics}), *result.results[1:]]}
    )
    page, markdown = render_html([result], ["tp8-pp2"]), render_markdown([result], ["tp8-pp2"])
    for text in (page, markdown):
        assert "Load sent" in text and "TTFT by turn" in text
        assert "43.8%" in text or "43.75%" in text, "the prefix-cache hit rate"
        assert "931" in text, "turn 2's TTFT mean"
