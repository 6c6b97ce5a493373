"""Reports draw what repeats and client checks say: '± half-width' beside a repeated level's figures, error
bars in the plots, and a client-bound level tagged INVALID in every table, highlighted in the page and crossed
in the figures."""

from __future__ import annotations

from reports.html import render_html
from reports.intervals import half_width
from reports.markdown import render_markdown
from reports.repeats import fold_repeats
from reports.schema import ClientCheck, Distribution, Result
from reports.text import num


def _folded(make_result, n: int = 3) -> Result:  # type: ignore[no-untyped-def]
    runs = [make_result(10 + i) for i in range(n)]
    levels = [fold_repeats([run.results[k] for run in runs]) for k in range(len(runs[0].results))]
    return runs[0].model_copy(update={"results": levels})


def _invalid(result: Result, index: int) -> Result:
    check = ClientCheck(
        verdict="invalid",
        reasons=["client CPU 99% of one core (over 95%): the one event loop had no time to spare"],
        configured_concurrency=64,
        achieved_concurrency=40.0,
        loop_lag_ms=Distribution(p99=35.0, count=100),
        cpu_fraction=0.99,
        cores=1,
    )
    levels = list(result.results)
    levels[index] = levels[index].model_copy(
        update={"metrics": levels[index].metrics.model_copy(update={"client": check})}
    )
    return result.model_copy(update={"results": levels})


def test_a_repeated_level_shows_mean_plus_minus_half_the_interval(make_result) -> None:  # type: ignore[no-untyped-def]
    result = _folded(make_result)
    text = render_markdown([result], ["rep"])
    level = result.results[0]
    interval = level.intervals["output_tokens_per_s"]
    assert f"{num(level.metrics.throughput.output_tokens_per_s)} ± {num(half_width(interval))}" in text
    tpot = level.intervals["tpot_p99"]
    assert f"{num(level.metrics.tpot_ms.p99)} ± {num(half_width(tpot))}" in text
    assert "the mean of 3 repeats ± the half-width of its 95% Student t-interval" in text
    single = render_markdown([make_result(1)], ["one"])
    assert " ± " not in single and "repeats" not in single


def test_the_html_page_draws_error_bars_for_repeats(make_result) -> None:  # type: ignore[no-untyped-def]
    with_bars = render_html([_folded(make_result)], ["rep"])
    without = render_html([make_result(1)], ["one"])
    # matplotlib draws error bars as LineCollections, a <g id="LineCollection_..."> group each
    assert with_bars.count("LineCollection") > without.count("LineCollection")


def test_an_invalid_level_is_tagged_in_markdown_and_highlighted_and_crossed_in_html(make_result) -> None:  # type: ignore[no-untyped-def]
    result = _invalid(make_result(3), 3)
    text = render_markdown([result], ["run"])
    assert "| c=64 [INVALID]" in text
    assert "c=64 INVALID: client CPU 99% of one core" in text
    assert "### Client check (did the load generator keep up?)" in text
    assert "| c=8 [INVALID]" not in text

    page = render_html([result], ["run"])
    assert '<tr class="invalid"><td class="">c=64 [INVALID]</td>' in page
    assert "1 of 5 level(s) INVALID" in page
    assert "client-bound level [INVALID]" in page  # the plots' legend for the red cross
    clean = render_html([make_result(3)], ["run"])
    assert "client-bound level [INVALID]" not in clean and 'class="invalid"' not in clean
