"""Comparison across runs: per-GPU normalisation, the Pareto frontier, the best setting under SLOs."""

from __future__ import annotations

import pytest

from reports.compare import SloError, compare, pareto_frontier, parse_slo, slo_metric, stored_slo
from reports.markdown import render_comparison_markdown
from reports.schema import Distribution, Result


def three_topologies(make_result) -> list[Result]:  # type: ignore[no-untyped-def]
    return [
        make_result(0, topology="tp8-pp2", tp=8, pp=2, gpus=16, speed=1.0),
        make_result(1, topology="tp4-pp4", tp=4, pp=4, gpus=16, speed=0.8),
        make_result(2, topology="tp8-pp1", tp=8, pp=1, gpus=8, speed=0.7),
    ]


def test_per_gpu_values_divide_by_each_runs_gpus(make_result) -> None:  # type: ignore[no-untyped-def]
    results = three_topologies(make_result)
    cmp = compare(results)
    for point in cmp.points:
        gpus = results[point.run_index].run.gpus
        assert point.gpus == gpus
        assert point.out_tps_per_gpu == pytest.approx((point.out_tps or 0) / gpus)


def test_gpus_are_derived_from_tp_pp_and_replicas_when_not_recorded(make_result) -> None:  # type: ignore[no-untyped-def]
    result = make_result(0, gpus=None)
    cmp = compare([result])
    assert {p.gpus for p in cmp.points} == {16}
    assert cmp.notes == ["tp8-pp2: run.gpus not recorded; derived as TP x PP x LWS replicas"]


def test_the_frontier_keeps_exactly_the_undominated_points(make_result) -> None:  # type: ignore[no-untyped-def]
    cmp = compare(three_topologies(make_result))
    frontier = cmp.frontier
    tpots = [p.value("tpot_p99") for p in frontier]
    assert tpots == sorted(tpots)
    assert [p.out_tps_per_gpu for p in frontier] == sorted(p.out_tps_per_gpu for p in frontier)
    for point in cmp.points:
        dominated = any(
            (q.value("tpot_p99") or 0) <= (point.value("tpot_p99") or 0)
            and (q.out_tps_per_gpu or 0) > (point.out_tps_per_gpu or 0)
            for q in cmp.points
        )
        assert (point in frontier) == (not dominated), (point.run, point.level)


def test_the_frontier_leaves_out_levels_with_missing_values(make_result) -> None:  # type: ignore[no-untyped-def]
    result = make_result(0)
    level = result.results[-1]
    blank = level.metrics.model_copy(update={"tpot_ms": Distribution()})
    result = result.model_copy(
        update={"results": [*result.results[:-1], level.model_copy(update={"metrics": blank})]}
    )
    cmp = compare([result])
    assert all(p.level != "c=128" for p in pareto_frontier(cmp.points))
    assert "1 level(s) left out: TPOT p99 or per-GPU throughput missing" in render_comparison_markdown(cmp)


def test_best_setting_is_the_highest_per_gpu_throughput_meeting_every_slo(make_result) -> None:  # type: ignore[no-untyped-def]
    cmp = compare(three_topologies(make_result), slo={"tpot_ms": 50, "ttft_ms": 2000})
    eligible = [
        p for p in cmp.points if (p.value("tpot_p99") or 1e9) <= 50 and (p.value("ttft_p99") or 1e9) <= 2000
    ]
    assert cmp.best is not None
    assert cmp.best.out_tps_per_gpu == max(p.out_tps_per_gpu or 0 for p in eligible)
    assert cmp.slo == {"tpot_ms": 50, "ttft_ms": 2000, "error_rate": 0.01}
    # Tighter SLOs move the best setting to a lower load.
    tight = compare(three_topologies(make_result), slo={"tpot_ms": 30})
    assert tight.best is not None and (tight.best.value("tpot_p99") or 0) <= 30
    assert (tight.best.out_tps_per_gpu or 0) < (cmp.best.out_tps_per_gpu or 0)


def test_no_level_meeting_the_slo_is_said_plainly(make_result) -> None:  # type: ignore[no-untyped-def]
    cmp = compare(three_topologies(make_result), slo={"tpot_ms": 1})
    assert cmp.best is None
    assert (
        "Best setting under TPOT p99 <= 1 ms, error rate <= 1.0%: none of the levels meets the SLOs."
        in render_comparison_markdown(cmp)
    )


def test_with_no_level_meeting_the_slo_the_best_without_it_is_named_too(make_result) -> None:  # type: ignore[no-untyped-def]
    cmp = compare(three_topologies(make_result), slo={"tpot_ms": 1})
    free = compare(three_topologies(make_result))
    assert cmp.best_any == free.best and free.best is not None
    text = render_comparison_markdown(cmp)
    assert f"Without the SLOs: {free.best.run} at {free.best.level}: " in text, text


def _with_stored_slo(result: Result, slo: dict[str, float]) -> Result:
    levels = [
        lr.model_copy(update={"load": lr.load.model_copy(update={"slo": slo})}) for lr in result.results
    ]
    return result.model_copy(update={"results": levels})


def test_the_slos_stored_in_the_runs_apply_when_they_agree_and_are_named(make_result) -> None:  # type: ignore[no-untyped-def]
    runs = [_with_stored_slo(r, {"ttft_ms": 2000, "tpot_ms": 50}) for r in three_topologies(make_result)]
    slo, note = stored_slo(runs)
    assert slo == {"ttft_ms": 2000, "tpot_ms": 50}
    assert note.startswith("SLOs as stored in the runs (TPOT p99 <= 50 ms, TTFT p99 <= 2000 ms)"), note
    cmp = compare(runs, slo=slo, slo_note=note)
    assert note in render_comparison_markdown(cmp)
    assert stored_slo([_with_stored_slo(r, {}) for r in runs]) == (
        {},
        "",
    )  # no SLOs stored: none, nothing said
    runs[1] = _with_stored_slo(runs[1], {"tpot_ms": 30})
    slo, note = stored_slo(runs)
    assert slo == {} and "measured under different SLOs" in note and "give --slo" in note, note


def test_a_level_with_a_missing_slo_value_is_unknown_not_passing(make_result) -> None:  # type: ignore[no-untyped-def]
    result = make_result(0)
    level = result.results[0]
    blank = level.metrics.model_copy(update={"ttft_ms": Distribution()})
    result = result.model_copy(
        update={"results": [level.model_copy(update={"metrics": blank}), *result.results[1:]]}
    )
    cmp = compare([result], slo={"ttft_ms": 5000})
    verdict = cmp.verdicts[(0, "c=1")]
    assert verdict.meets is None and verdict.missing == ["ttft_ms"]
    assert "- tp8-pp2 c=1: no value for ttft_ms" in render_comparison_markdown(cmp)


def test_slo_keys_name_a_percentile_or_default_to_p99() -> None:
    assert slo_metric("tpot_ms") == "tpot_p99"
    assert slo_metric("ttft_p90_ms") == "ttft_p90"
    assert parse_slo("tpot_ms=50, ttft_ms=2000,error_rate=0.05") == {
        "tpot_ms": 50,
        "ttft_ms": 2000,
        "error_rate": 0.05,
    }
    with pytest.raises(SloError, match="unknown SLO 'tpot'; valid: ttft_ms, tpot_ms"):
        parse_slo("tpot=50")
    with pytest.raises(SloError, match="not a number"):
        parse_slo("tpot_ms=fast")
    with pytest.raises(SloError, match="not KEY=VALUE"):
        parse_slo("tpot_ms")


def test_the_comparison_puts_the_same_load_side_by_side(make_result) -> None:  # type: ignore[no-untyped-def]
    results = three_topologies(make_result)
    results[2] = make_result(2, topology="tp8-pp1", tp=8, pp=1, gpus=8, concurrencies=(1, 8, 32))
    text = render_comparison_markdown(compare(results))
    section = text[text.index("## Output tokens/s per GPU by load") : text.index("## TPOT p99")]
    rows = [line for line in section.splitlines() if line.startswith("| c=")]
    assert [r.split("|")[1].strip() for r in rows] == ["c=1", "c=8", "c=32", "c=64", "c=128"]
    assert rows[-1].split("|")[4].strip() == "\u2014"  # tp8-pp1 never ran c=128
    header = next(line for line in section.splitlines() if line.startswith("| load"))
    assert [h.strip() for h in header.split("|")[1:-1]] == ["load", "tp8-pp2", "tp4-pp4", "tp8-pp1"]


def _repeated(result: Result, outs: list[float]) -> Result:
    """Every level of `result` run len(outs) times, repeat i serving outs[i] output tokens/s."""
    from reports.repeats import fold_repeats

    levels = []
    for level in result.results:
        runs = [
            level.model_copy(
                update={
                    "metrics": level.metrics.model_copy(
                        update={
                            "throughput": level.metrics.throughput.model_copy(
                                update={"output_tokens_per_s": out}
                            )
                        }
                    )
                }
            )
            for out in outs
        ]
        levels.append(fold_repeats(runs))
    return result.model_copy(update={"results": levels})


def test_the_best_setting_is_set_against_each_other_run_with_a_welch_interval(make_result) -> None:  # type: ignore[no-untyped-def]
    """3 repeats each: a clear lead holds at 95%; one inside the noise is said to be indistinguishable."""
    clear = [
        _repeated(make_result(0, topology="tp8-pp2", tp=8, pp=2, gpus=16), [1600.0, 1632.0, 1568.0]),
        _repeated(make_result(1, topology="tp4-pp4", tp=4, pp=4, gpus=16), [1280.0, 1296.0, 1264.0]),
    ]
    text = render_comparison_markdown(compare(clear, slo={}))
    # per GPU: 100 +- 2 against 80 +- 1, at every level
    assert "Against tp4-pp4 at c=1: +20.00 output tok/s per GPU (95% Welch interval" in text, text
    assert "): the difference holds at 95%." in text, text
    noisy = [
        _repeated(make_result(0, topology="tp8-pp2", tp=8, pp=2, gpus=16), [1760.0, 1600.0, 1440.0]),
        _repeated(make_result(1, topology="tp4-pp4", tp=4, pp=4, gpus=16), [1584.0, 1600.0, 1616.0]),
    ]
    text = render_comparison_markdown(compare(noisy, slo={}))
    assert "not distinguishable from no difference at 3 and 3 repeats" in text, text
    from reports.schema import ClientCheck

    starved = ClientCheck(verdict="invalid", reasons=["event-loop lag p99 57.1 ms (over 20 ms)"])
    behind = clear[1].model_copy(
        update={
            "results": [
                lv.model_copy(update={"metrics": lv.metrics.model_copy(update={"client": starved})})
                for lv in clear[1].results
            ]
        }
    )
    text = render_comparison_markdown(compare([clear[0], behind], slo={}, allow_invalid=True))
    assert "the difference holds at 95%. tp4-pp4's level was client-bound [INVALID]" in text, text
    unmet = render_comparison_markdown(compare(clear, slo={"tpot_ms": 0.001}))  # none meets: the best without
    assert "Without the SLOs: tp8-pp2 at c=1" in unmet and "Against tp4-pp4 at c=1: +20.00" in unmet, unmet
    once = [
        make_result(0, topology="tp8-pp2", tp=8, pp=2, gpus=16),
        make_result(1, topology="tp4-pp4", tp=4, pp=4),
    ]
    assert "Welch" not in render_comparison_markdown(compare(once))  # one draw each: no difference is said


def test_levels_meeting_the_slo_without_a_per_gpu_value_are_not_said_to_miss_it(make_result) -> None:  # type: ignore[no-untyped-def]
    """An --endpoint run (GPUs unknown): the levels meet the SLOs but cannot be ranked per GPU; the line said
    'none of the levels meets the SLOs' above '3 of 3 levels meet the SLOs'."""
    result = make_result(0, gpus=None, tp=None, pp=None)
    cmp = compare([result], slo={"ttft_ms": 1e9, "tpot_ms": 1e9})
    assert cmp.best is None and all(v.meets for v in cmp.verdicts.values())
    text = render_comparison_markdown(cmp)
    assert "none of the levels meets the SLOs" not in text, text
    assert (
        f"none: {len(cmp.points)} level(s) meet the SLOs, but none has a per-GPU value to rank by." in text
    ), text
