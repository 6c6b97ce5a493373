"""Where numbers came from: the gate and the comparison refuse to mix a simulator run with a real engine's
(or runs of different time scale, GPU product or testbed) unless told to, and every table of a simulated
run says so, with its time scale, and offers its figures in modelled time."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reports.cli import main
from reports.compare import compare
from reports.gate import GateInputError, gate
from reports.gate_report import render_gate_markdown
from reports.markdown import render_comparison_markdown, render_markdown
from reports.provenance import MixedRunsError, in_modelled_time, mixed_fields
from reports.schema import Result, parse_result

H100 = "NVIDIA H100 80GB HBM3"


def with_run(result: Result, **fields: object) -> Result:
    return result.model_copy(update={"run": result.run.model_copy(update=fields)})


def sim(make_result, seed: int = 0, scale: float = 0.2, **kwargs) -> Result:  # type: ignore[no-untyped-def]
    return with_run(
        make_result(seed, **kwargs), engine="sim", sim_time_scale=scale, testbed=True, gpu_product=H100
    )


def real(make_result, seed: int = 0, engine: str = "vllm-cpu", **kwargs) -> Result:  # type: ignore[no-untyped-def]
    return with_run(
        make_result(seed, **kwargs), engine=engine, sim_time_scale=None, testbed=True, gpu_product=H100
    )


def write(tmp_path: Path, name: str, result: Result) -> str:
    path = tmp_path / f"{name}.json"
    result.write(path)
    return str(path)


def cells(markdown: str, row_start: str) -> list[str]:
    """The cells of the first table row starting with ``row_start``."""
    row = next(line for line in markdown.splitlines() if line.startswith(row_start))
    return [c.strip() for c in row.strip().strip("|").split("|")]


def test_gate_exits_2_on_a_simulator_baseline_against_a_real_engine_candidate(
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    baseline = write(tmp_path, "nightly-sim", sim(make_result))
    candidate = write(tmp_path, "cpu", real(make_result))

    code = main(["gate", "--baseline", baseline, "--candidate", candidate])

    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "runs differ in engine: sim (baseline " in err and "vs vllm-cpu (candidate " in err, err
    assert "nightly-sim.json" in err and "cpu.json" in err and "--allow-mixed" in err


def test_gate_with_allow_mixed_passes_and_the_report_says_which_fields_differ(
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    baseline = write(tmp_path, "nightly-sim", sim(make_result))
    candidate = write(tmp_path, "cpu", real(make_result))  # the same numbers, another engine

    code = main(["gate", "--baseline", baseline, "--candidate", candidate, "--allow-mixed"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "Mixing allowed (--allow-mixed): the runs differ in engine: sim (" in out
    assert "sim_time_scale: 0.2 (" in out and "vs none (" in out
    assert "gpu_product" not in out.split("## All checks")[0]  # the same GPU: not named as differing
    last = out.strip().splitlines()[-1]
    assert last.startswith("gate: PASSED") and "[mixed runs allowed: engine, sim_time_scale differ]" in last
    assert "tp8-pp2 [baseline sim 0.2x; candidate vllm-cpu]" in out


@pytest.mark.parametrize(
    ("field", "baseline_value", "candidate_value", "shown"),
    [
        ("sim_time_scale", 0.2, 1.0, "sim_time_scale: 0.2 (baseline #1) vs 1 (candidate #1)"),
        (
            "gpu_product",
            H100,
            "NVIDIA H200",
            f"gpu_product: {H100} (baseline #1) vs NVIDIA H200 (candidate #1)",
        ),
        ("testbed", True, False, "testbed: true (baseline #1) vs false (candidate #1)"),
    ],
)
def test_the_gate_refuses_each_provenance_field_by_name(
    make_result,  # type: ignore[no-untyped-def]
    field: str,
    baseline_value: object,
    candidate_value: object,
    shown: str,
) -> None:
    base = with_run(sim(make_result), **{field: baseline_value})
    cand = with_run(sim(make_result), **{field: candidate_value})
    with pytest.raises(GateInputError) as caught:
        gate([base], [cand])
    assert f"runs differ in {shown}" in str(caught.value)
    assert gate([base], [cand], allow_mixed=True).passed


def test_a_file_without_engine_loads_as_unknown_and_does_not_mix_with_a_known_engine(make_result) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads(sim(make_result).to_json())
    del raw["run"]["engine"]  # as written before the field existed
    old = parse_result(json.dumps(raw), "old.json")
    assert old.run.engine is None

    assert mixed_fields([("old", old), ("new", old)]) == []
    with pytest.raises(GateInputError, match=r"engine: unknown \(baseline #1\) vs sim \(candidate #1\)"):
        gate([old], [sim(make_result)])
    assert gate([old], [sim(make_result)], allow_mixed=True).mixed[0].field == "engine"
    # only the simulator records a time scale, so the old file is still labelled where its numbers stand
    assert "## old [sim 0.2x]" in render_markdown([old], ["old"])


def test_compare_refuses_mixed_runs_and_with_allow_mixed_says_so(tmp_path: Path, make_result, capsys) -> None:  # type: ignore[no-untyped-def]
    a = write(tmp_path, "tp8-pp2", sim(make_result))
    b = write(tmp_path, "tp16-pp1", real(make_result, topology="tp16-pp1", tp=16, pp=1, engine="vllm"))

    assert main(["compare", a, b]) == 2
    err = capsys.readouterr().err
    assert "runs differ in engine: sim (" in err and "vs vllm (" in err and "tp16-pp1.json" in err
    with pytest.raises(MixedRunsError):
        compare([sim(make_result), real(make_result)])

    assert main(["compare", a, b, "--allow-mixed"]) == 0
    out = capsys.readouterr().out
    assert "Mixing allowed (--allow-mixed): the runs differ in engine" in out


def test_every_table_of_a_simulated_run_says_so_with_its_time_scale(make_result) -> None:  # type: ignore[no-untyped-def]
    report = render_markdown([sim(make_result)], ["tp16-pp1"])

    assert "## tp16-pp1 [sim 0.2x]" in report
    assert "### Throughput [sim 0.2x, wall-clock as measured]" in report
    assert "### Latency (ms) [sim 0.2x, wall-clock as measured]" in report
    assert "### Latency (ms) [sim 0.2x, modelled time]" in report
    assert "engine sim 0.2x" in report
    # a real engine's tables carry no tag
    plain = render_markdown([real(make_result)], ["tp16-pp1"])
    assert "[sim" not in plain and "engine vllm-cpu" in plain


def test_the_comparison_labels_the_simulated_run_in_every_table(make_result) -> None:  # type: ignore[no-untyped-def]
    runs = [sim(make_result, 0), sim(make_result, 1, topology="tp16-pp1", tp=16, pp=1)]
    text = render_comparison_markdown(compare(runs, ["tp8-pp2", "tp16-pp1"], {"tpot_ms": 50}))

    per_run, pivots = text.split("## Output tokens/s per GPU by load")
    assert cells(per_run, "| tp8-pp2")[:2] == ["tp8-pp2 [sim 0.2x]", "sim 0.2x"]
    assert "tp8-pp2, tp16-pp1 [sim 0.2x]: the suite's simulated engine at time scale 0.2" in per_run
    assert cells(pivots, "| load") == ["load", "tp8-pp2 [sim 0.2x]", "tp16-pp1 [sim 0.2x]"]
    assert cells(text.split("## Pareto frontier")[1], "| tp")[0].endswith("[sim 0.2x]")
    best = text.split("## Best setting")[1]
    assert "[sim 0.2x] at c=" in best


def test_the_html_run_table_and_plots_label_the_simulated_run(make_result) -> None:  # type: ignore[no-untyped-def]
    from reports.html import render_html

    page = render_html([sim(make_result, timeline=True)], ["tp16-pp1"])
    runs_table = page.split("<nav>")[0]
    assert '<td class="">sim 0.2x</td>' in runs_table
    assert "tp16-pp1 [sim 0.2x]: the suite&#x27;s simulated engine at time scale 0.2" in runs_table
    assert "Latency (ms) [sim 0.2x, modelled time]" in page
    assert "tp16-pp1 [sim 0.2x]: percentiles per load level" in page  # a plot's caption
    modelled = render_html([sim(make_result)], ["tp16-pp1"], modelled_time=True)
    assert "tp16-pp1 [sim 0.2x, modelled time]: percentiles per load level" in modelled


def test_modelled_time_divides_durations_and_multiplies_rates_by_the_time_scale(make_result) -> None:  # type: ignore[no-untyped-def]
    measured = sim(make_result, scale=0.2)
    modelled = in_modelled_time(measured)
    m, c = measured.results[2], modelled.results[2]

    assert c.metrics.tpot_ms.p99 == pytest.approx(m.metrics.tpot_ms.p99 / 0.2)  # type: ignore[operator]
    assert c.metrics.ttft_ms.p50 == pytest.approx(m.metrics.ttft_ms.p50 / 0.2)  # type: ignore[operator]
    assert c.metrics.duration_s == pytest.approx(m.metrics.duration_s / 0.2)  # type: ignore[operator]
    out_m, out_c = m.metrics.throughput.output_tokens_per_s, c.metrics.throughput.output_tokens_per_s
    assert out_c == pytest.approx(out_m * 0.2)  # type: ignore[operator]
    assert c.load.slo == {"ttft_ms": 10000.0, "tpot_ms": 250.0}
    assert c.metrics.requests == m.metrics.requests and c.metrics.output_tokens == m.metrics.output_tokens
    assert c.load.concurrency == m.load.concurrency
    # nothing to convert for a real engine, or for a simulator without pacing
    assert in_modelled_time(real(make_result)) == real(make_result)
    unpaced = sim(make_result, scale=0.0)
    assert in_modelled_time(unpaced) == unpaced
    assert "## x [sim unpaced]" in render_markdown([unpaced], ["x"])


def test_gate_in_modelled_time_matches_simulated_runs_of_different_time_scales(make_result) -> None:  # type: ignore[no-untyped-def]
    fast = sim(make_result, scale=0.2)
    slow = in_modelled_time(fast).model_copy(
        update={"run": fast.run.model_copy(update={"sim_time_scale": 1.0})}
    )

    with pytest.raises(GateInputError, match="sim_time_scale"):
        gate([fast], [slow])
    as_measured = gate([fast], [slow], allow_mixed=True)
    assert not as_measured.passed  # 0.2x against 1x, as measured: five times slower
    modelled = gate([fast], [slow], allow_mixed=True, modelled_time=True)
    assert modelled.passed, render_gate_markdown(modelled)
    assert "tp8-pp2 [baseline sim 0.2x, modelled time; candidate sim 1x, modelled time]" in {
        c.config for c in modelled.checks
    }


def with_loads(result: Result, **fields: object) -> Result:
    """Every level's load spec changed, as a run with another workload or other lengths has them."""
    levels = [lv.model_copy(update={"load": lv.load.model_copy(update=fields)}) for lv in result.results]
    return result.model_copy(update={"results": levels})


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        (lambda r: with_run(r, model="meta-llama/Llama-3.1-8B"), "model: "),
        (
            lambda r: with_loads(r, workload="sharegpt"),
            "workload: random (baseline #1) vs sharegpt (candidate #1)",
        ),
        (lambda r: with_loads(r, input_len=4096), "input_len: 1024 (baseline #1) vs 4096 (candidate #1)"),
        (lambda r: with_loads(r, output_len=512), "output_len: 128 (baseline #1) vs 512 (candidate #1)"),
    ],
    ids=["model", "workload", "input_len", "output_len"],
)
def test_compare_and_gate_refuse_runs_of_another_model_workload_or_length_by_name(
    change,  # type: ignore[no-untyped-def]
    shown: str,
    tmp_path: Path,
    make_result,  # type: ignore[no-untyped-def]
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    base, cand = sim(make_result), change(sim(make_result))
    field = shown.split(":")[0]
    with pytest.raises(GateInputError, match=re.escape(f"runs differ in {shown}")):
        gate([base], [cand])
    with pytest.raises(MixedRunsError, match=f"runs differ in {field}: "):
        compare([base, cand], ["a", "b"])

    a, b = write(tmp_path, "a", base), write(tmp_path, "b", cand)
    assert main(["gate", "--baseline", a, "--candidate", b]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"runs differ in {field}: " in err, err
    assert main(["compare", a, b]) == 2
    assert f"runs differ in {field}: " in capsys.readouterr().err
    assert main(["compare", a, b, "--allow-mixed"]) == 0
    assert f"Mixing allowed (--allow-mixed): the runs differ in {field}: " in capsys.readouterr().out


def test_the_gate_holds_each_topology_to_its_own_model_so_a_sweep_of_two_models_is_gated(
    make_result,  # type: ignore[no-untyped-def]
) -> None:
    """A nightly sweep whose topologies serve different models (tp8-pp2 the 405B, tp8-pp1 the 70B) is gated,
    each topology against its own baseline; the same topology on another model is still refused."""
    big = with_run(sim(make_result), topology="tp8-pp2", model="meta-llama/Llama-3.1-405B-Instruct")
    small = with_run(
        sim(make_result, seed=1), topology="tp8-pp1", model="meta-llama/Llama-3.1-70B-Instruct",
        pipeline_parallel_size=1,
    )  # fmt: skip
    report = gate([big, small], [big, small])
    assert report.passed, render_gate_markdown(report)
    assert {c.config.split(" [")[0] for c in report.checks} >= {"tp8-pp2", "tp8-pp1"}
    with pytest.raises(GateInputError, match="runs differ in model: "):
        gate([big, small], [with_run(big, model="meta-llama/Llama-3.1-8B"), small])
    with pytest.raises(MixedRunsError, match="runs differ in model: "):
        compare(
            [big, small], ["a", "b"]
        )  # side by side, two models are two experiments: refused unless allowed
