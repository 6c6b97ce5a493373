"""The gate with repeats and client checks: a file run with --repeats N counts as N runs, a change beyond
the band is a regression only when the 95% interval of the difference excludes no change, and a level
where the client was the bottleneck is refused unless allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.cli import main
from reports.compare import compare
from reports.gate import GateInputError, gate
from reports.gate_report import render_gate_markdown
from reports.gate_verdict import judge, worse_interval
from reports.repeats import fold_repeats
from reports.schema import ClientCheck, Result
from reports.validity import InvalidLevelsError


def test_a_change_beyond_the_band_whose_interval_spans_zero_is_unclear_not_a_regression() -> None:
    baseline = [100.0, 100.5, 99.5]
    noisy = [90.0, 70.0, 110.0]  # mean 90: 10% worse, but one repeat is better than the baseline
    steady = [90.0, 89.5, 90.5]
    assert judge(baseline, noisy, True, tolerance=5, k=0)[0] == "unclear"
    assert judge(baseline, steady, True, tolerance=5, k=0)[0] == "REGRESSION"
    low, high = worse_interval(baseline, noisy, True) or (0.0, 0.0)
    assert low < 0 < high
    low, high = worse_interval(baseline, steady, True) or (0.0, 0.0)
    assert 0 < low < 10 < high
    # lower is better: the sign follows the direction
    low, high = worse_interval([10.0, 10.1, 9.9], [12.0, 12.1, 11.9], False) or (0.0, 0.0)
    assert 1.5 < low < 2 < high < 2.5


def test_a_single_run_on_either_side_keeps_the_band_rule() -> None:
    assert worse_interval([100.0], [80.0, 81.0], True) is None
    assert judge([100.0], [80.0, 70.0, 110.0], True, tolerance=5, k=0)[0] == "REGRESSION"


def _folded(make_result, first_seed: int, n: int = 3, **kwargs) -> Result:  # type: ignore[no-untyped-def]
    runs = [make_result(first_seed + i, **kwargs) for i in range(n)]
    levels = [fold_repeats([run.results[k] for run in runs]) for k in range(len(runs[0].results))]
    return runs[0].model_copy(update={"results": levels})


def test_one_file_with_repeats_counts_as_that_many_runs(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = _folded(make_result, 0, n=5)
    same = _folded(make_result, 100, n=3)
    worse = _folded(make_result, 100, n=3, throughput_factor=0.9)

    report = gate([baseline], [same])
    assert report.passed, render_gate_markdown(report)
    assert all(len(c.baseline) == 5 and len(c.candidate) == 3 for c in report.checks)
    assert all(c.interval is not None for c in report.checks)
    failed = gate([baseline], [worse])
    assert {c.metric for c in failed.regressions} >= {"output_tokens_per_s"}
    assert "95% interval of change" in render_gate_markdown(failed)


def _with_invalid_level(result: Result, index: int) -> Result:
    check = ClientCheck(verdict="invalid", reasons=["sent 900.0 requests/s of the 20,000.0/s that were due"])
    levels = list(result.results)
    level = levels[index]
    levels[index] = level.model_copy(update={"metrics": level.metrics.model_copy(update={"client": check})})
    return result.model_copy(update={"results": levels})


def test_an_invalid_level_is_refused_naming_it_unless_allowed(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = [make_result(i) for i in range(3)]
    candidate = _with_invalid_level(make_result(50), 3)
    with pytest.raises(GateInputError, match=r"candidate #1 level c=64: sent 900\.0 requests/s"):
        gate(baseline, [candidate])
    with pytest.raises(InvalidLevelsError, match="c=64"):
        compare([candidate])

    report = gate(baseline, [candidate], allow_invalid=True)
    assert [f.level for f in report.invalid] == ["c=64"]
    assert "Invalid levels allowed" in render_gate_markdown(report)
    assert any(c.level == "c=64 [INVALID]" for c in report.checks)
    comparison = compare([candidate], allow_invalid=True)
    assert "c=64 [INVALID]" in {p.level for p in comparison.points}
    assert comparison.best is not None and "INVALID" not in comparison.best.level


def test_when_every_level_is_client_bound_the_best_setting_says_so(make_result) -> None:  # type: ignore[no-untyped-def]
    """Not 'no per-GPU values': the values are there, but a client-bound level is never ranked."""
    from reports.compare_tables import best_lines

    candidate = make_result(50)
    for index in range(len(candidate.results)):
        candidate = _with_invalid_level(candidate, index)
    comparison = compare([candidate], allow_invalid=True)
    assert comparison.best is None
    assert best_lines(comparison)[0].endswith(
        "none: every level was client-bound [INVALID], so none can be ranked."
    ), best_lines(comparison)


def test_the_cli_exits_2_naming_the_level_and_allow_invalid_lets_it_through(
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = tmp_path / "base.json"
    make_result(0).write(base)
    cand = tmp_path / "cand.json"
    _with_invalid_level(make_result(1), 1).write(cand)

    assert main(["gate", "--baseline", str(base), "--candidate", str(cand)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cand.json level c=8" in err and "--allow-invalid" in err
    assert main(["compare", str(cand)]) == 2
    assert "level c=8" in capsys.readouterr().err
    assert main(["gate", "--baseline", str(base), "--candidate", str(cand), "--allow-invalid"]) in (0, 1)
    assert main(["compare", str(cand), "--allow-invalid"]) == 0
    assert "Invalid levels allowed" in capsys.readouterr().out


def test_an_unclear_change_is_listed_and_passes(make_result) -> None:  # type: ignore[no-untyped-def]
    def with_throughput(result: Result, value: float) -> Result:
        levels = [
            lv.model_copy(
                update={
                    "metrics": lv.metrics.model_copy(
                        update={
                            "throughput": lv.metrics.throughput.model_copy(
                                update={"output_tokens_per_s": value}
                            )
                        }
                    )
                }
            )
            for lv in result.results[:1]
        ]
        return result.model_copy(update={"results": levels})

    baseline = [with_throughput(make_result(i), v) for i, v in enumerate((100.0, 100.5, 99.5))]
    candidate = [with_throughput(make_result(10 + i), v) for i, v in enumerate((90.0, 70.0, 110.0))]
    only = {"output_tokens_per_s": 5.0, **{m: None for m in ("requests_per_s", "goodput", "error_rate")}}
    only |= {m: None for m in ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p50", "itl_p99")}
    only |= {"e2el_p50": None, "e2el_p99": None}
    report = gate(baseline, candidate, tolerances=only, k=0)
    assert report.passed
    (check,) = report.checks
    assert check.verdict == "unclear"
    text = render_gate_markdown(report)
    assert "## Unclear: beyond the band, but the 95% interval includes no change (1; not failing)" in text
    assert text.rstrip().endswith("gate: PASSED: 1 checks within their bands")
