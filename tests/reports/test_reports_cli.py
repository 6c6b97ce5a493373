"""``python -m reports``: what a nightly job and a person at a terminal see, and the exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reports.cli import main

REPO = Path(__file__).resolve().parents[2]


def write_runs(tmp_path: Path, make_result, prefix: str, seeds: range, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    paths = []
    for seed in seeds:
        path = tmp_path / f"{prefix}-{seed}.json"
        make_result(seed, **kwargs).write(path)
        paths.append(str(path))
    return paths


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reports", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_gate_exits_1_naming_the_metric_and_0_for_noise(tmp_path: Path, make_result) -> None:  # type: ignore[no-untyped-def]
    baseline = write_runs(tmp_path, make_result, "base", range(5))
    same = write_runs(tmp_path, make_result, "same", range(100, 105))
    worse = write_runs(tmp_path, make_result, "worse", range(200, 205), throughput_factor=0.9)

    tripped = run_module("gate", "--baseline", *baseline, "--candidate", *worse)
    assert tripped.returncode == 1, tripped.stderr
    last = tripped.stdout.strip().splitlines()[-1]
    assert last.startswith("gate: FAILED:") and "tp8-pp2 c=64 output_tokens_per_s" in last

    assert main(["gate", "--baseline", *baseline, "--candidate", *same]) == 0


def test_gate_tolerances_come_from_the_command_line(tmp_path: Path, make_result, capsys) -> None:  # type: ignore[no-untyped-def]
    baseline = write_runs(tmp_path, make_result, "base", range(5))
    worse = write_runs(tmp_path, make_result, "worse", range(200, 205), throughput_factor=0.9)
    off = ["--tolerance", "output_tokens_per_s=off,requests_per_s=off", "--tolerance", "goodput=off"]
    assert main(["gate", "--baseline", *baseline, "--candidate", *worse, *off]) == 0
    assert "output_tokens_per_s off" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
        ('{"schema": "lws-vllm-suite/result/v0"}', "schema 'lws-vllm-suite/result/v0' is not supported"),
        ('{"results": []}', "no 'schema' field; not a result file of this suite"),
        (
            '{"schema": "lws-vllm-suite/result/v1", "run": {"gpus": "many"}}',
            "run.gpus: Input should be a valid integer",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_exit_2(
    tmp_path: Path, content: str, problem: str, capsys
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["render", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"reports render: {bad}: ") and problem in err


def test_a_missing_file_and_bad_options_exit_2_without_a_traceback(tmp_path: Path, make_result) -> None:  # type: ignore[no-untyped-def]
    good = write_runs(tmp_path, make_result, "run", range(1))
    missing = run_module("compare", str(tmp_path / "nope.json"))
    assert missing.returncode == 2
    assert (
        missing.stderr
        == f"reports compare: {tmp_path / 'nope.json'}: cannot read (No such file or directory)\n"
    )

    for args, message in [
        (["compare", *good, "--slo", "tpot=50"], "reports compare: unknown SLO 'tpot'; valid: "),
        (
            ["gate", "--baseline", *good, "--candidate", *good, "--tolerance", "speed=5"],
            "reports gate: tolerance for unknown metric 'speed'; valid: ",
        ),
    ]:
        done = run_module(*args)
        assert done.returncode == 2 and done.stderr.startswith(message) and "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1


def test_gate_with_nothing_in_common_is_an_input_error(tmp_path: Path, make_result, capsys) -> None:  # type: ignore[no-untyped-def]
    base = write_runs(tmp_path, make_result, "base", range(1))
    other = write_runs(tmp_path, make_result, "other", range(1, 2), topology="tp4-pp4", tp=4, pp=4)
    assert main(["gate", "--baseline", *base, "--candidate", *other]) == 2
    assert "no load level of the candidate matches the baseline" in capsys.readouterr().err


def test_render_and_compare_write_markdown_and_html(tmp_path: Path, make_result, capsys) -> None:  # type: ignore[no-untyped-def]
    runs = [
        *write_runs(tmp_path, make_result, "tp8-pp2", range(1)),
        *write_runs(tmp_path, make_result, "tp4-pp4", range(1, 2), topology="tp4-pp4", tp=4, pp=4),
    ]
    out = tmp_path / "out"

    assert main(["render", *runs, "--markdown", str(out / "report.md")]) == 0
    printed = capsys.readouterr().out
    assert printed == (out / "report.md").read_text() and "## tp8-pp2-0" in printed

    assert main(["compare", *runs, "--slo", "tpot_ms=50", "--html", str(out / "cmp.html")]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("# Comparison across runs") and "Best setting under TPOT p99 <= 50 ms" in printed
    )
    page = (out / "cmp.html").read_text()
    assert 'id="comparison"' in page and page.count("<svg") >= 4


def test_an_unwritable_output_is_an_input_error(tmp_path: Path, make_result, capsys) -> None:  # type: ignore[no-untyped-def]
    runs = write_runs(tmp_path, make_result, "run", range(1))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["render", *runs, "--markdown", str(blocker / "report.md")]) == 2
    assert capsys.readouterr().err.startswith(f"reports render: {blocker / 'report.md'}: cannot write")
