"""The regression gate: noise between repeat runs never trips it, a real regression always does."""

from __future__ import annotations

import math

import pytest

from reports.gate import DEFAULT_TOLERANCES, GateInputError, gate, parse_tolerances
from reports.gate_report import render_gate_markdown, summary_line
from reports.gate_verdict import judge, pooled_cv
from reports.schema import Result

LEVELS = ("c=1", "c=8", "c=32", "c=64", "c=128")


def repeats(make_result, first_seed: int, n: int = 5, **kwargs) -> list[Result]:  # type: ignore[no-untyped-def]
    return [make_result(first_seed + i, **kwargs) for i in range(n)]


def test_five_repeat_runs_of_the_same_configuration_do_not_trip(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = repeats(make_result, 0)
    candidate = repeats(make_result, 100)

    report = gate(baseline, candidate)

    assert report.passed, render_gate_markdown(report)
    assert {c.level for c in report.checks} == set(LEVELS)
    assert all(len(c.baseline) == 5 and len(c.candidate) == 5 for c in report.checks)


def test_each_single_repeat_against_five_baseline_runs_does_not_trip(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = repeats(make_result, 0)
    for seed in range(100, 105):
        report = gate(baseline, [make_result(seed)])
        assert report.passed, f"seed {seed}\n" + render_gate_markdown(report)


def test_an_injected_10_percent_throughput_regression_trips_at_every_level(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = repeats(make_result, 0)
    candidate = repeats(make_result, 100, throughput_factor=0.9)

    report = gate(baseline, candidate)

    assert not report.passed
    tripped = {(c.level, c.metric) for c in report.regressions}
    assert {(level, "output_tokens_per_s") for level in LEVELS} <= tripped
    # Latency was not touched, so it must not be blamed.
    assert not [c for c in report.regressions if c.metric.startswith(("ttft", "tpot", "itl", "e2el"))]
    line = summary_line(report)
    assert line.startswith("gate: FAILED") and "output_tokens_per_s" in line


@pytest.mark.parametrize("trial", range(12))
def test_across_seeds_noise_never_trips_and_a_10_percent_drop_always_does(make_result, trial: int) -> None:  # type: ignore[no-untyped-def]
    """Five baseline and five candidate repeats with 2.5% CV, many independent draws."""
    baseline = repeats(make_result, 1000 * trial)
    same = gate(baseline, repeats(make_result, 1000 * trial + 500))
    worse = gate(baseline, repeats(make_result, 1000 * trial + 500, throughput_factor=0.9))

    assert same.passed, render_gate_markdown(same)
    assert any(c.metric == "output_tokens_per_s" for c in worse.regressions)


def test_a_3_percent_cv_still_does_not_trip_and_still_catches_10_percent(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = repeats(make_result, 7, cv=0.03)
    assert gate(baseline, repeats(make_result, 70, cv=0.03)).passed
    assert not gate(baseline, repeats(make_result, 70, cv=0.03, throughput_factor=0.9)).passed


def test_direction_latency_up_is_a_regression_and_throughput_up_is_better() -> None:
    assert judge([100.0] * 3, [120.0] * 3, higher_is_better=False, tolerance=10)[0] == "REGRESSION"
    assert judge([100.0] * 3, [80.0] * 3, higher_is_better=False, tolerance=10)[0] == "better"
    assert judge([100.0] * 3, [120.0] * 3, higher_is_better=True, tolerance=10)[0] == "better"
    assert judge([100.0] * 3, [80.0] * 3, higher_is_better=True, tolerance=10)[0] == "REGRESSION"


def test_without_noise_the_tolerance_alone_sets_the_band() -> None:
    assert judge([100.0], [95.5], higher_is_better=True, tolerance=5) == ("ok", 5.0, None)
    verdict, allowed, noise = judge([100.0], [94.0], higher_is_better=True, tolerance=5)
    assert (verdict, allowed, noise) == ("REGRESSION", 5.0, None)


def test_noisy_repeats_widen_the_band_beyond_the_tolerance() -> None:
    baseline = [100.0, 112.0, 88.0, 106.0, 94.0]  # sd ~9.5: a CV near 10%
    verdict, allowed, noise = judge(baseline, [90.0], higher_is_better=True, tolerance=5)
    sd = math.sqrt(sum((v - 100.0) ** 2 for v in baseline) / 4)
    assert noise == pytest.approx(3 * sd * math.sqrt(1 / 5 + 1))
    assert allowed == noise and verdict == "ok"


def test_pooled_cv_covers_a_level_whose_repeats_happen_to_agree() -> None:
    cv = pooled_cv([[100.0, 110.0, 90.0], [50.0, 55.0, 45.0], [10.0, 10.0, 10.0]])
    assert cv == pytest.approx(math.sqrt((2 * 0.1**2 + 2 * 0.1**2 + 0) / 6))
    # Identical repeats alone would give a zero band; the pooled CV keeps a 7% drop within noise.
    assert judge([10.0, 10.0, 10.0], [9.3], True, tolerance=5, cv=0.1)[0] == "ok"
    assert judge([10.0, 10.0, 10.0], [9.3], True, tolerance=5, cv=None)[0] == "REGRESSION"


def test_missing_values_are_reported_never_read_as_zero(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = repeats(make_result, 0, n=3)
    broken = make_result(50)
    first = broken.results[0]
    no_ttft = first.metrics.model_copy(
        update={"ttft_ms": first.metrics.ttft_ms.model_copy(update={"p99": None})}
    )
    candidate = broken.model_copy(
        update={"results": [first.model_copy(update={"metrics": no_ttft}), *broken.results[1:3]]}
    )

    report = gate(baseline, [candidate])
    ttft = next(c for c in report.checks if c.level == "c=1" and c.metric == "ttft_p99")
    lost = [c for c in report.checks if c.level == "c=128"]

    assert ttft.verdict == "missing" and ttft.candidate == () and ttft.candidate_missing == 1
    assert lost and all(c.verdict == "missing" for c in lost)
    assert not report.regressions  # missing data is reported, never read as a change
    assert not report.passed  # but what the candidate lacks fails the gate (test_reports_gate_strictness.py)
    text = render_gate_markdown(report)
    assert "## Missing data" in text and "c=1 ttft_p99: candidate has no value in 1 run(s)" in text
    assert "c=128 output_tokens_per_s: candidate lacks this level" in text


def test_error_rate_tolerance_is_in_percentage_points(make_result) -> None:  # type: ignore[no-untyped-def]
    assert judge([0.0, 0.0], [0.015], higher_is_better=False, tolerance=1, absolute=True)[0] == "REGRESSION"
    assert judge([0.0, 0.0], [0.005], higher_is_better=False, tolerance=1, absolute=True)[0] == "ok"


def test_tolerances_parse_override_and_switch_off() -> None:
    parsed = parse_tolerances(["output_tokens_per_s=3", "ttft_p99=off,itl_p90=12%"])
    assert parsed == {"output_tokens_per_s": 3.0, "ttft_p99": None, "itl_p90": 12.0}
    with pytest.raises(GateInputError, match=r"unknown metric 'throughput'.*valid: .*output_tokens_per_s"):
        parse_tolerances(["throughput=5"])
    with pytest.raises(GateInputError, match="not METRIC=PERCENT"):
        parse_tolerances(["ttft_p99"])
    with pytest.raises(GateInputError, match="not a percentage"):
        parse_tolerances(["ttft_p99=lots"])


def test_a_tolerance_of_off_removes_the_metric_from_the_gate(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = repeats(make_result, 0)
    candidate = repeats(make_result, 100, throughput_factor=0.9)
    off = {"output_tokens_per_s": None, "requests_per_s": None, "goodput": None}
    report = gate(baseline, candidate, off)
    assert report.passed
    assert not any(c.metric == "output_tokens_per_s" for c in report.checks)
    assert set(DEFAULT_TOLERANCES) - set(off) == {c.metric for c in report.checks}


def test_nothing_in_common_is_an_input_error_not_a_pass(make_result) -> None:  # type: ignore[no-untyped-def]
    new_config = make_result(1, topology="tp4-pp4", tp=4, pp=4)
    with pytest.raises(GateInputError, match="no load level of the candidate matches the baseline"):
        gate([make_result(0)], [new_config])
    # Unless asked for, as on the first night of a new configuration: said plainly, and passing.
    report = gate([make_result(0)], [new_config], allow_no_baseline=True, allow_missing=True)
    assert report.passed
    assert {c.verdict for c in report.checks if c.config == "tp4-pp4"} == {"no baseline"}
    assert {c.verdict for c in report.checks if c.config == "tp8-pp2"} == {"missing"}
    assert summary_line(report) == (
        "gate: PASSED: nothing to judge, no candidate level has a baseline (a new configuration?)"
    )


def test_the_report_lists_regressions_first_and_ends_with_the_verdict(make_result) -> None:  # type: ignore[no-untyped-def]
    report = gate(repeats(make_result, 0), repeats(make_result, 100, throughput_factor=0.9))
    text = render_gate_markdown(report)
    lines = text.strip().splitlines()
    assert text.index("## Regressions") < text.index("## All checks")
    assert lines[-1].startswith("gate: FAILED: ")
    row = next(line for line in lines if "c=64" in line and "output_tokens_per_s" in line)
    assert "REGRESSION" in row and "(n=5)" in row and "-" in row.split("|")[7]
