"""The version matrix: one conformance report per (Kubernetes, LWS) cell, as one Markdown table, the way the
Gateway API project publishes its implementations' conformance reports (kubernetes-sigs/gateway-api,
conformance/reports/<version>/<implementation>/README.md: a table per version, rows the runs, columns the
profiles, each cell the profile's result). Rows are the versions, columns the profiles; each cell is the
profile's core result, with the extended level's result after it when the profile has one; then the run's
exit code and wall time. Cells that did not produce a report say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from reports.conformance_profiles import BY_NAME
from reports.conformance_report import ConformanceReport, ProfileReport, read_report


class Cell(BaseModel):
    """One run of the matrix, as recorded in version-matrix.json."""

    model_config = ConfigDict(extra="forbid")

    kubernetes: str
    lws: str
    exit_code: int
    wall_s: float
    report: str | None = None  # the conformance report's path, relative to the matrix directory
    note: str | None = None  # why there is no report (the run's last line), or what it said


class Matrix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matrix_id: str
    started: str
    command: list[str]
    cells: list[Cell]


@dataclass(frozen=True)
class _Row:
    cell: Cell
    report: ConformanceReport | None


def _verdict(profile: ProfileReport) -> str:
    core = profile.core.result
    if profile.extended is None:
        return core
    return f"{core} (ext. {profile.extended.result})"


def _wall(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def render(matrix: Matrix, base: Path) -> str:
    """The Markdown table of `matrix`, reading each cell's report under `base`."""
    rows = [_Row(c, read_report(base / c.report) if c.report else None) for c in matrix.cells]
    names = [
        n for n in BY_NAME if any(r.report and any(p.name == n for p in r.report.profiles) for r in rows)
    ]
    names = names or list(BY_NAME)
    lines = [
        f"# Version matrix {matrix.matrix_id}",
        "",
        f"Started {matrix.started}; `{' '.join(matrix.command)}`. Each cell: the profile's core result, and its",
        "extended result in parentheses (success: every test passed; partial: some skipped or untested; failure:",
        "a test failed). One conformance report per row, linked."
        + (
            " LWS `A -> B`: the testbed started on A and was upgraded in place to B before the other checks "
            "(--lws-upgrade-from, the LWS-UPGRADE profile)."
            if any(r.report and r.report.implementation.lws_upgraded_from for r in rows)
            else ""
        ),
        "",
        "| Kubernetes | LWS | " + " | ".join(names) + " | exit | wall time | report |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " | --- | --- | --- |",
    ]
    for row in rows:
        cell = row.cell
        by_name = {p.name: p for p in row.report.profiles} if row.report else {}
        verdicts = [_verdict(by_name[n]) if n in by_name else "not run" for n in names]
        link = f"[report]({cell.report})" if cell.report else (cell.note or "no report")
        upgraded = row.report.implementation.lws_upgraded_from if row.report else None
        lws = f"{upgraded} -> {cell.lws}" if upgraded else cell.lws  # --lws-upgrade-from: upgraded in place
        lines.append(
            f"| {cell.kubernetes} | {lws} | {' | '.join(verdicts)} | {cell.exit_code} | "
            f"{_wall(cell.wall_s)} | {link} |"
        )
    details = _details(rows)
    return "\n".join(lines + (["", *details] if details else [])) + "\n"


def _details(rows: list[_Row]) -> list[str]:
    """Per row, the tests that failed or were skipped, with their reasons: what a reader checks first."""
    out: list[str] = []
    for row in rows:
        if row.report is None:
            continue
        noted = [t for t in row.report.tests if t.outcome != "passed"]
        if not noted:
            continue
        out.append(f"## Kubernetes {row.cell.kubernetes}, LWS {row.cell.lws}: not passed")
        out.append("")
        for test in noted:
            reason = " ".join((test.reason or "").split())[:300]
            out.append(f"- {test.outcome.upper()} `{test.name}`: {reason}")
        out.append("")
    return out
