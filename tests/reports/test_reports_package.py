"""The reports package stays a library: no pytest, nothing else of ours, plotting only when asked for."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from reports.schema import SCHEMA_VERSION, parse_result

PACKAGE = Path(__file__).resolve().parents[2] / "reports"
OURS = {"fixtures", "manifests", "suite", "load", "testbed", "tests", "conftest", "noxfile"}


def test_reports_imports_neither_pytest_nor_other_packages_of_ours() -> None:
    for source in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top != "pytest" and top not in OURS, f"{source.name} imports {name}"


def test_the_schema_and_the_gate_do_not_pull_in_matplotlib() -> None:
    code = (
        "import sys, reports.schema, reports.gate, reports.cli, reports.markdown; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_files_written_before_the_timeline_field_still_read() -> None:
    old = json.dumps(
        {
            "schema": SCHEMA_VERSION,
            "run": {"topology": "tp8-pp2"},
            "results": [
                {
                    "load": {"concurrency": 8},
                    "metrics": {
                        "ttft_ms": {},
                        "tpot_ms": {},
                        "itl_ms": {},
                        "e2el_ms": {},
                        "requests": {"sent": 1, "completed": 1, "failed": 0},
                        "throughput": {},
                    },
                }
            ],
        }
    )
    level = parse_result(old).results[0]
    assert level.timeline == []
    assert level.metrics.throughput.output_tokens_per_s is None  # missing stays None
