"""`python -m suite.version_matrix` (nox -s matrix): a version that is not a release is a usage error before any
cell runs; a version that cannot be had makes its cell say so in one line, exit 3, and the table is still
written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _matrix(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "suite.version_matrix", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_a_version_that_is_not_a_release_is_a_usage_error(tmp_path: Path) -> None:
    proc = _matrix("--lws-versions", "v0.8.0,latest", "--artifacts", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "matrix: --lws-versions 'latest': not a release version; give one like v0.9.0 "
        "(see `python -m suite.version_matrix --help`)"
    )
    assert not any(tmp_path.iterdir())  # nothing ran


def test_a_version_that_cannot_be_had_is_its_cell_in_one_line_with_exit_3(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the embedded testbed needs root: the cell would stop on that before the version")
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    refused = {"Error": "sigs.k8s.io/lws@v0.10.0: reading https://proxy.golang.org/...: 403 Forbidden"}
    (fakebin / "go").write_text(f"#!/bin/sh\necho '{json.dumps(refused)}'\nexit 1\n")
    (fakebin / "go").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fakebin}{os.pathsep}{os.environ['PATH']}",
        "LWS_SUITE_CACHE": str(tmp_path / "cache"),
        "LWS_SUITE_STATE": str(tmp_path / "state"),
    }
    proc = _matrix("--lws-versions", "v0.10.0", "--artifacts", str(tmp_path / "out"), env=env)
    assert proc.returncode == 3, proc.stderr
    (matrix_dir,) = (tmp_path / "out").iterdir()
    record = json.loads((matrix_dir / "version-matrix.json").read_text())
    (cell,) = record["cells"]
    assert (cell["lws"], cell["kubernetes"], cell["exit_code"], cell["report"]) == (
        "v0.10.0",
        "v1.36.3",
        3,
        None,
    )
    assert "sigs.k8s.io/lws v0.10.0 cannot be had" in cell["note"] and "403 Forbidden" in cell["note"]
    table = (matrix_dir / "version-matrix.md").read_text()
    assert "| v1.36.3 | v0.10.0 | " in table and "cannot be had" in table
