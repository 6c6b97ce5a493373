"""`python -m suite.version_matrix` (also `nox -s matrix -- ...`): the conformance suite over a list of LWS and
Kubernetes versions on the embedded testbed, one cell after another.

    nox -s matrix -- --lws-versions v0.7.0,v0.8.0,v0.9.0 --kubernetes-versions v1.36.3 [pytest options...]

Each cell is one `python -m pytest suite/conformance --lws-version L --kubernetes-version K --artifacts
<dir>/<cell>` on a private testbed of its own (built once per version, then reused), its output kept in
`<cell>/run.log`. The matrix directory, `<artifacts>/matrix-<UTC time>/`, gets `version-matrix.json` (every cell:
versions, exit code, wall time, report) and `version-matrix.md`, the table (reports/version_matrix.py), rewritten
after each cell so an interrupted matrix keeps what finished. Options it does not know go to every cell's pytest
(e.g. `--conformance-profiles LWS-CORE`, `-x`).

Exit codes: 0 every cell passed; 1 a cell failed a check; 2 usage (a version that is not vX.Y.Z, or a cell's
pytest refused its options: the matrix stops there); 3 a version could not be had (refused or does not build:
its cell says so in one line) or this machine lacks a prerequisite; 130 interrupted (the table keeps the cells
that finished).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from plumbing.exit_codes import FAILED, INTERRUPTED, OK, PREREQUISITE, USAGE, run_cli
from reports.version_matrix import Cell, Matrix, render
from testbed.versions import KUBERNETES, LWS, BadVersion, release

REPORT = "conformance-report.yaml"
STOPS_THE_MATRIX = {USAGE, INTERRUPTED}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"matrix: {message} (see `python -m suite.version_matrix --help`)", file=sys.stderr)
        raise SystemExit(USAGE)


def _versions(option: str, value: str, major: int | None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise BadVersion(f"{option} {value!r}: give one or more versions, comma-separated")
    return list(dict.fromkeys(release(option, v, major=major) for v in items))


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m suite.version_matrix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lws-versions", default=LWS, metavar="V,V,...", help=f"default: {LWS}")
    parser.add_argument(
        "--kubernetes-versions", default=KUBERNETES, metavar="V,V,...", help=f"default: {KUBERNETES}"
    )
    parser.add_argument("--artifacts", default="artifacts", metavar="DIR", help="default: %(default)s")
    args, passthrough = parser.parse_known_args(argv)
    try:
        lws = _versions("--lws-versions", args.lws_versions, None)
        kubernetes = _versions("--kubernetes-versions", args.kubernetes_versions, 1)
    except BadVersion as exc:
        parser.error(str(exc))
    started = datetime.now(UTC)
    matrix_id = "matrix-" + started.strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.artifacts) / matrix_id
    out.mkdir(parents=True, exist_ok=True)
    matrix = Matrix(
        matrix_id=matrix_id,
        started=started.isoformat(timespec="seconds"),
        command=["nox -s matrix --", *(argv if argv is not None else sys.argv[1:])],
        cells=[],
    )
    cells = [(k, v) for k in kubernetes for v in lws]
    code = OK
    for index, (k8s, version) in enumerate(cells, 1):
        print(
            f"matrix: cell {index}/{len(cells)}: Kubernetes {k8s}, LWS {version}", file=sys.stderr, flush=True
        )
        cell = run_cell(out, k8s, version, passthrough)
        matrix.cells.append(cell)
        _write(matrix, out)
        print(
            f"matrix: cell {index}/{len(cells)}: exit {cell.exit_code} in {cell.wall_s:.0f} s"
            + (f"; {cell.note}" if cell.note else ""),
            file=sys.stderr,
            flush=True,
        )
        code = _worst(code, cell.exit_code)
        if cell.exit_code in STOPS_THE_MATRIX:
            break
    print(f"matrix: {out / 'version-matrix.md'}", file=sys.stderr)
    return code


def run_cell(out: Path, kubernetes: str, lws: str, passthrough: list[str]) -> Cell:
    """One conformance run; its cell (the report found under its artifacts, or the run's last line)."""
    name = f"k8s-{kubernetes}_lws-{lws}"
    cell_dir = out / name
    cell_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        str(Path(__file__).resolve().parent / "conformance"),
        "-p",
        "no:cacheprovider",
        "--lws-version",
        lws,
        "--kubernetes-version",
        kubernetes,
        "--artifacts",
        str(cell_dir),
        *passthrough,
    ]
    started = time.perf_counter()
    with (cell_dir / "run.log").open("w") as log:
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - started
    reports = sorted(cell_dir.glob(f"*/{REPORT}"))
    report = str(reports[-1].relative_to(out)) if reports else None
    note = None if report else _last_line(cell_dir / "run.log")
    return Cell(
        kubernetes=kubernetes, lws=lws, exit_code=code, wall_s=round(wall, 1), report=report, note=note
    )


def _last_line(path: Path) -> str | None:
    """The run's last line that says something: pytest's closing banner ("=== no tests ran in 3.5s ===") and its
    exit banner (!!!) are passed over, so a run stopped with one line (exit 3) is told by that line."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    said = [line for line in lines if line and not line.startswith(("=", "!"))]
    return said[-1][:300] if said else None


def _worst(a: int, b: int) -> int:
    order = [OK, FAILED, PREREQUISITE]
    if a not in order or b not in order:
        return a if a not in order else b
    return max(a, b, key=order.index)


def _write(matrix: Matrix, out: Path) -> None:
    (out / "version-matrix.json").write_text(matrix.model_dump_json(indent=2))
    (out / "version-matrix.md").write_text(render(matrix, out))


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m suite.version_matrix"))
