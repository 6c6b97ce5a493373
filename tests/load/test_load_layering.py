"""``load`` is a library: it never imports pytest and of this suite only ``reports.schema`` and
``reports.repeats`` (the schema's folding of a level's repeats with their intervals: no rendering, no CLI).

Checked for every module of the package, the Locust runner's included.
"""

from __future__ import annotations

import ast
from pathlib import Path

LOAD = Path(__file__).resolve().parents[2] / "load"
OURS = ("fixtures", "manifests", "suite", "testbed", "tests", "reports", "conftest", "noxfile")
ALLOWED = ("reports.schema", "reports.repeats")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_load_imports_no_pytest_and_nothing_of_ours_but_the_report_schema() -> None:
    offending = {}
    for path in sorted(LOAD.glob("*.py")):
        bad = {
            name
            for name in imports(path)
            if name.split(".")[0] in ("pytest", "_pytest")
            or (name.split(".")[0] in OURS and name not in ALLOWED)
        }
        if bad:
            offending[path.name] = sorted(bad)
    assert not offending
