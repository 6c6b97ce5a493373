"""The import rules of docs/architecture.md, checked on every module of the suite's packages.

The libraries (plumbing, manifests, reports, load, testbed) never import pytest, fixtures or suite; each may import
only the packages of ours its row names (plumbing, the leaf, nothing; every other package may import it); in `fixtures` only the pytest plugins (`*_plugin.py`) and the helpers they hook in (`pytest_*.py`) import
pytest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("plumbing", "manifests", "reports", "load", "testbed", "fixtures", "suite", "tests")
PYTEST = ("pytest", "_pytest")

# package -> the modules of ours it may import (a package name allows all of it, a dotted name only that module)
ALLOWED: dict[str, tuple[str, ...]] = {
    "plumbing": (),
    "manifests": ("plumbing",),
    "reports": ("plumbing",),
    "load": ("plumbing", "reports.schema", "reports.repeats", "reports.group_load"),
    "testbed": ("plumbing", "manifests"),
    "fixtures": ("plumbing", "manifests", "testbed", "reports", "load"),
    "suite": ("plumbing", "manifests", "testbed", "reports", "load", "fixtures"),
}
LIBRARIES = ("plumbing", "manifests", "reports", "load", "testbed")


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:`: imports for annotations, not dependencies at run time."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def imported_modules(source: str) -> set[str]:
    """Absolute module names a module imports at run time, at any depth (also inside functions)."""
    names: set[str] = set()
    tree = ast.parse(source)
    skipped = _type_checking_only(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _allowed(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == rule or name.startswith(rule + ".") for rule in allowed)


def _pytest_glue(module: str) -> bool:
    """fixtures' modules that are pytest's own machinery: the plugins and the helpers they hook in."""
    name = Path(module).name
    return name.endswith("_plugin.py") or name.startswith("pytest_")


def violations(package: str, module: str, source: str) -> list[str]:
    """What `module` (a file of `package`) imports against the rules, as readable lines; [] when it keeps them."""
    found = []
    for name in sorted(imported_modules(source)):
        top = name.split(".")[0]
        if top in PYTEST:
            if package in LIBRARIES or (package == "fixtures" and not _pytest_glue(module)):
                found.append(
                    f"{module} imports {name}: only tests, suite and fixtures' *_plugin.py and pytest_*.py may use pytest"
                )
        elif top in OURS and top != package and not _allowed(name, ALLOWED[package]):
            if "." in name and _allowed(name.rsplit(".", 1)[0], ALLOWED[package]):
                continue  # `from reports.schema import Result` names reports.schema.Result: its module is allowed
            found.append(
                f"{module} imports {name}: {package} may import only {ALLOWED[package] or 'nothing of ours'}"
            )
    return found


def test_every_module_keeps_the_import_rules_of_the_architecture_page() -> None:
    found = []
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            found += violations(package, str(path.relative_to(ROOT)), path.read_text())
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("package", "module", "line"),
    [
        ("load", "load/x.py", "import pytest"),
        ("reports", "reports/x.py", "from fixtures.kube import Kube"),
        ("testbed", "testbed/x.py", "from suite.conformance.checks import pod_roles"),
        ("manifests", "manifests/x.py", "def f():\n    import testbed.processes"),
        ("plumbing", "plumbing/x.py", "import pytest"),
        ("plumbing", "plumbing/x.py", "from testbed.versions import KUBECTL_MINOR"),
        ("plumbing", "plumbing/x.py", "from fixtures.kube import Kube"),
        ("plumbing", "plumbing/x.py", "from load.locust.kubectl import Kubectl"),
        ("load", "load/x.py", "from reports.gate import gate"),
        ("fixtures", "fixtures/deploy.py", "import pytest"),
        ("testbed", "testbed/x.py", "from fixtures import settings"),
    ],
)
def test_the_rule_check_catches_a_library_importing_what_it_must_not(
    package: str, module: str, line: str
) -> None:
    assert violations(package, module, line)


@pytest.mark.parametrize(
    ("package", "module", "line"),
    [
        ("load", "load/x.py", "from reports.schema import Result"),
        ("load", "load/x.py", "from reports.repeats import fold"),
        ("testbed", "testbed/x.py", "from plumbing.argtypes import positive_int"),
        ("fixtures", "fixtures/deployment_plugin.py", "import pytest"),
        ("fixtures", "fixtures/pytest_progress.py", "import pytest"),
        ("testbed", "testbed/x.py", "from manifests.launch_command import parse"),
        ("testbed", "testbed/x.py", "from plumbing.wait import NotYet, wait_for"),
        ("load", "load/x.py", "from plumbing.port_forward import port_forward"),
        ("fixtures", "fixtures/x.py", "from plumbing.kubectl import find_kubectl"),
        ("suite", "suite/x.py", "import pytest\nfrom fixtures.kube import Kube"),
        (
            "fixtures",
            "fixtures/x.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pytest",
        ),
    ],
)
def test_the_rule_check_allows_what_the_page_allows(package: str, module: str, line: str) -> None:
    assert violations(package, module, line) == []
