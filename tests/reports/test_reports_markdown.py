"""The Markdown report reads well in a terminal: aligned tables, formulas named, missing data visible."""

from __future__ import annotations

import re

from reports.markdown import render_markdown
from reports.schema import Distribution, Result
from reports.text import MISSING, md_table


def _table_blocks(text: str) -> list[list[str]]:
    blocks, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def test_every_table_is_aligned_for_a_fixed_width_font(make_result) -> None:  # type: ignore[no-untyped-def]
    text = render_markdown([make_result(0, recovery=True), make_result(1, topology="tp4-pp4", tp=4, pp=4)])
    blocks = _table_blocks(text)
    assert len(blocks) == 5  # throughput + latency per run, and one recovery table
    for block in blocks:
        assert len({len(line) for line in block}) == 1, "\n".join(block)
        pipes = [[m.start() for m in re.finditer(r"\|", line)] for line in block]
        assert all(p == pipes[0] for p in pipes), "\n".join(block)


def test_a_run_section_snapshot(make_result) -> None:  # type: ignore[no-untyped-def]
    text = render_markdown([make_result(0)], names=["nightly-tp8-pp2"])
    lines = text.splitlines()

    assert lines[0] == "# Benchmark report"
    assert "## nightly-tp8-pp2" in lines
    assert (
        "- deployment: topology tp8-pp2, TP x PP 8 x 2, LWS vllm (group size 2, replicas 1), 2 nodes, "
        "16 GPUs (NVIDIA H100 80GB HBM3)"
    ) in lines
    assert lines[lines.index("### Throughput") + 2].split() == [
        "|",
        "load",
        "|",
        "sent",
        "|",
        "failed",
        "|",
        "req/s",
        "|",
        "out",
        "tok/s",
        "|",
        "out",
        "tok/s/GPU",
        "|",
        "total",
        "tok/s",
        "|",
        "goodput",
        "req/s",
        "|",
        "lag",
        "p99",
        "ms",
        "|",
        "window",
        "s",
        "|",
    ]
    assert lines[lines.index("### Latency (ms)") + 2].split("|")[1:-1] == [
        " load  ",
        " TTFT p50 ",
        " TTFT p99 ",
        " TPOT p50 ",
        " TPOT p99 ",
        " ITL p50 ",
        " ITL p99 ",
        " E2EL p50 ",
        " E2EL p99 ",
    ]
    load_column = [line.split("|")[1].strip() for line in lines if line.startswith("| c=")]
    assert load_column[:5] == ["c=1", "c=8", "c=32", "c=64", "c=128"]


def test_each_metric_names_its_formula(make_result) -> None:  # type: ignore[no-untyped-def]
    text = render_markdown([make_result(0)])
    for formula in [
        "TTFT = first token-carrying chunk - request send time",
        "TPOT = (last token time - first token time) / (output tokens - 1), per request with > 1 token",
        "ITL = gaps between consecutive token-carrying chunks, pooled over requests",
        "E2EL = last token time - request send time",
        "out tok/s = sum of usage.completion_tokens / window",
        "per GPU = value / GPUs of the LWS groups that served the level",
        "send time - scheduled send time",
    ]:
        assert formula in text, formula


def test_per_gpu_throughput_is_output_throughput_over_run_gpus(make_result) -> None:  # type: ignore[no-untyped-def]
    result = make_result(0)
    row = next(
        line
        for line in render_markdown([result]).splitlines()
        if line.startswith("| c=64 ") and line.count("|") == 11
    )
    cells = [c.strip() for c in row.split("|")[1:-1]]
    out = result.results[3].metrics.throughput.output_tokens_per_s
    assert cells[4] == f"{out:,.0f}" and cells[5] == f"{out / 16:,.0f}"


def test_missing_values_show_as_missing_never_as_zero(make_result) -> None:  # type: ignore[no-untyped-def]
    result: Result = make_result(0, gpus=None)
    bare = result.model_copy(
        update={
            "run": result.run.model_copy(
                update={"tensor_parallel_size": None, "pipeline_parallel_size": None, "vllm_version": None}
            )
        }
    )
    level = bare.results[0]
    empty = level.metrics.model_copy(update={"ttft_ms": Distribution(), "goodput_requests_per_s": None})
    bare = bare.model_copy(update={"results": [level.model_copy(update={"metrics": empty})]})

    text = render_markdown([bare])

    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| c=1 ") and "TTFT" not in line and line.count("|") == 10
    )
    assert row.split("|")[2].strip() == MISSING and row.split("|")[3].strip() == MISSING  # TTFT p50, p99
    assert "run.gpus not recorded and TP/PP unknown; per-GPU values left empty" in text
    assert "vLLM " + MISSING in text
    throughput_row = next(
        line for line in text.splitlines() if line.startswith("| c=1 ") and line.count("|") == 11
    )
    assert throughput_row.split("|")[6].strip() == MISSING  # per GPU
    assert throughput_row.split("|")[8].strip() == MISSING  # goodput


def test_md_table_right_aligns_numbers_and_marks_it_for_renderers() -> None:
    table = md_table(["load", "tok/s"], [["c=1", "9.5"], ["c=128", "1,234"]])
    assert table.splitlines() == [
        "| load  | tok/s |",
        "|:------|------:|",
        "| c=1   |   9.5 |",
        "| c=128 | 1,234 |",
    ]
