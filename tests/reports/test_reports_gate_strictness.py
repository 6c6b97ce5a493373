"""What the gate cannot be talked into passing: a level or metric the candidate lacks (unless
--allow-missing), an unclear change under --strict, a regression that also makes runs erratic (the band is
the baseline's alone), and a level whose server view contradicts the client (refused unless
--allow-invalid)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.cli import main
from reports.gate import GateInputError, gate
from reports.gate_report import render_gate_markdown, summary_line
from reports.gate_verdict import judge
from reports.repeats import fold_repeats
from reports.schema import Result, ServerView

# only output tokens/s is gated in the hand-made cases below
ONLY_THROUGHPUT = {
    "output_tokens_per_s": 5.0,
    **{m: None for m in ("requests_per_s", "goodput", "error_rate", "e2el_p50", "e2el_p99")},
    **{m: None for m in ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p50", "itl_p99")},
}


def _throughput(result: Result, value: float, levels: int = 1) -> Result:
    """The first ``levels`` levels of ``result``, output tokens/s set to ``value``."""
    out = []
    for lv in result.results[:levels]:
        throughput = lv.metrics.throughput.model_copy(update={"output_tokens_per_s": value})
        out.append(
            lv.model_copy(update={"metrics": lv.metrics.model_copy(update={"throughput": throughput})})
        )
    return result.model_copy(update={"results": out})


def _write(results: list[Result], folder: Path, stem: str) -> list[str]:
    paths = []
    for i, result in enumerate(results):
        path = folder / f"{stem}-{i}.json"
        result.write(path)
        paths.append(str(path))
    return paths


def test_a_level_the_candidate_did_not_run_fails_the_gate_unless_allow_missing(
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = [make_result(i) for i in range(3)]
    short = make_result(50)
    short = short.model_copy(update={"results": short.results[:4]})  # c=128 not run

    report = gate(baseline, [short])
    assert not report.passed and not report.regressions
    assert {c.level for c in report.failures} == {"c=128"}
    line = summary_line(report)
    assert line.startswith(
        "gate: FAILED: 12 check(s) missing from the candidate (--allow-missing to pass them)"
    )
    assert "tp8-pp2 c=128 output_tokens_per_s" in line
    assert gate(baseline, [short], allow_missing=True).passed

    base, cand = _write(baseline, tmp_path, "base"), _write([short], tmp_path, "cand")
    assert main(["gate", "--baseline", *base, "--candidate", *cand]) == 1
    assert "missing from the candidate" in capsys.readouterr().out
    assert main(["gate", "--baseline", *base, "--candidate", *cand, "--allow-missing"]) == 0


def test_a_metric_the_candidate_lost_fails_the_gate_and_one_neither_side_has_does_not(
    make_result,  # type: ignore[no-untyped-def]
) -> None:
    baseline = [make_result(i) for i in range(3)]
    broken = make_result(50)
    first = broken.results[0]
    no_ttft = first.metrics.model_copy(
        update={"ttft_ms": first.metrics.ttft_ms.model_copy(update={"p99": None})}
    )
    candidate = broken.model_copy(
        update={"results": [first.model_copy(update={"metrics": no_ttft}), *broken.results[1:]]}
    )

    report = gate(baseline, [candidate])
    assert [(c.level, c.metric) for c in report.failures] == [("c=1", "ttft_p99")]

    def no_goodput(result: Result) -> Result:
        levels = [
            lv.model_copy(update={"metrics": lv.metrics.model_copy(update={"goodput_requests_per_s": None})})
            for lv in result.results
        ]
        return result.model_copy(update={"results": levels})

    # no SLOs on either side: goodput was never measured, so the candidate lacks nothing
    neither = gate([no_goodput(r) for r in baseline], [no_goodput(make_result(50))])
    assert neither.passed, render_gate_markdown(neither)
    assert {c.verdict for c in neither.checks if c.metric == "goodput"} == {"no baseline"}


def test_strict_fails_on_an_unclear_change(
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = [_throughput(make_result(i), v) for i, v in enumerate((100.0, 100.5, 99.5))]
    candidate = [_throughput(make_result(10 + i), v) for i, v in enumerate((90.0, 70.0, 110.0))]
    (check,) = gate(baseline, candidate, ONLY_THROUGHPUT, k=0).checks
    assert check.verdict == "unclear"

    report = gate(baseline, candidate, ONLY_THROUGHPUT, k=0, strict=True)
    assert not report.passed
    text = render_gate_markdown(report)
    assert "(1; failing: --strict)" in text
    assert text.rstrip().endswith(
        "gate: FAILED: 1 unclear change(s) (--strict): tp8-pp2 c=1 output_tokens_per_s -10.0%"
    )

    base, cand = _write(baseline, tmp_path, "base"), _write(candidate, tmp_path, "cand")
    off = [f"--tolerance={m}=off" for m, t in ONLY_THROUGHPUT.items() if t is None]
    common = ["gate", "--baseline", *base, "--candidate", *cand, "--k", "0", *off]
    assert main(common) == 0
    assert main([*common, "--strict"]) == 1
    capsys.readouterr()


def test_a_regression_that_also_makes_runs_erratic_does_not_widen_its_own_band() -> None:
    baseline = [100.0, 101.0, 99.0, 100.5, 99.5]  # sd 0.8
    erratic = [86.0 + d for d in (0.0, 10.0, -10.0, 5.0, -5.0)]  # 14% worse, sd 7.9
    verdict, allowed, noise = judge(baseline, erratic, higher_is_better=True, tolerance=5)
    assert noise is not None and noise < 2.0  # 3 x 0.8 x sqrt(2/5): the baseline's noise only
    assert allowed == 5.0  # so the tolerance sets the band, not the candidate's spread (15.0 with it)
    assert verdict == "REGRESSION"  # and the Welch interval, which does include both spreads, excludes 0


def test_the_pooled_noise_is_the_baselines_only(make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = [make_result(i, cv=0.005) for i in range(5)]
    erratic = [make_result(100 + i, cv=0.15, throughput_factor=0.85) for i in range(5)]
    report = gate(baseline, erratic)
    throughput = [c for c in report.checks if c.metric == "output_tokens_per_s"]
    assert all(c.band_from == "tolerance" for c in throughput), render_gate_markdown(report)
    assert not report.passed


def _with_server_problem(result: Result, index: int) -> Result:
    problem = (
        "client TTFT p50 2.0 ms below the server's lower bound 5.0 ms: the client's clock cannot be right"
    )
    levels = list(result.results)
    level = levels[index]
    view = ServerView(problems=[problem])
    levels[index] = level.model_copy(
        update={"metrics": level.metrics.model_copy(update={"server_view": view})}
    )
    return result.model_copy(update={"results": levels})


def test_a_level_whose_server_view_has_problems_is_refused_unless_allow_invalid(
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = [make_result(i) for i in range(3)]
    candidate = _with_server_problem(make_result(50), 2)
    with pytest.raises(GateInputError, match=r"candidate #1 level c=32: client TTFT p50 2\.0 ms below"):
        gate(baseline, [candidate])

    report = gate(baseline, [candidate], allow_invalid=True)
    assert [f.level for f in report.server_view] == ["c=32"]
    assert "Levels with server-view problems allowed" in render_gate_markdown(report)
    assert any(c.level == "c=32 [SERVER VIEW]" for c in report.checks)

    base, cand = _write(baseline, tmp_path, "base"), _write([candidate], tmp_path, "cand")
    assert main(["gate", "--baseline", *base, "--candidate", *cand]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cand-0.json level c=32" in err and "--allow-invalid" in err
    assert main(["gate", "--baseline", *base, "--candidate", *cand, "--allow-invalid"]) == 0


def test_a_repeat_with_server_view_problems_is_refused_too(make_result) -> None:  # type: ignore[no-untyped-def]
    calm, troubled = make_result(10), _with_server_problem(make_result(11), 0)
    repeated = calm.model_copy(update={"results": [fold_repeats([calm.results[0], troubled.results[0]])]})
    assert repeated.results[0].metrics.server_view is None  # the folded mean keeps no server view
    with pytest.raises(GateInputError, match="level c=1: client TTFT p50"):
        gate([make_result(0), make_result(1)], [repeated], allow_missing=True)
