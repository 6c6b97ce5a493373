"""The version matrix table: rows the versions, columns the profiles, each cell the profile's result, plus the
run's exit code and wall time; a cell without a report says why; what did not pass is listed under the table."""

from __future__ import annotations

from pathlib import Path

from reports.conformance_report import ConformanceReport
from reports.version_matrix import Cell, Matrix, render


def _report(core: str, extended: str | None, tests: list[dict[str, object]]) -> ConformanceReport:
    status = {"result": core, "statistics": {"passed": 1, "skipped": 0, "failed": 0}}
    profile = {
        "name": "LWS-CORE",
        "summary": "",
        "core": status,
        "extended": {"result": extended, "statistics": {"passed": 1}} if extended else None,
        "supportedFeatures": [],
        "unsupportedFeatures": [],
        "exemptFeatures": [],
        "featureSupport": {},
    }
    return ConformanceReport.model_validate(
        {
            "date": "2026-12-07T12:00:00+00:00",
            "runId": "r1",
            "implementation": {
                "cluster": {"kind": "embedded-testbed"},
                "lwsVersion": "v0.8.0",
                "topology": {},
            },
            "profiles": [profile],
            "tests": tests,
        }
    )


def test_a_matrix_renders_one_row_per_cell_with_results_exit_and_wall_time(tmp_path: Path) -> None:
    skipped = {
        "name": "test_observed_generation_catches_up",
        "features": ["LWS-CORE/AvailableCondition"],
        "outcome": "skipped",
        "reason": "LWS v0.8.0 has no status.observedGeneration (added in LWS v0.9.0)",
    }
    _report("partial", "success", [skipped]).write(tmp_path / "k8s-v1.36.3_lws-v0.8.0" / "r1" / "report.yaml")
    matrix = Matrix(
        matrix_id="matrix-x",
        started="2026-12-07T12:00:00+00:00",
        command=["nox -s matrix --", "--lws-versions", "v0.8.0,v0.10.0"],
        cells=[
            Cell(
                kubernetes="v1.36.3",
                lws="v0.8.0",
                exit_code=0,
                wall_s=754.4,
                report="k8s-v1.36.3_lws-v0.8.0/r1/report.yaml",
            ),
            Cell(
                kubernetes="v1.36.3",
                lws="v0.10.0",
                exit_code=3,
                wall_s=2.0,
                note="sigs.k8s.io/lws v0.10.0 cannot be had: ... 403 Forbidden",
            ),
        ],
    )
    text = render(matrix, tmp_path)
    assert "| Kubernetes | LWS | LWS-CORE | exit | wall time | report |" in text
    assert (
        "| v1.36.3 | v0.8.0 | partial (ext. success) | 0 | 12m34s | [report](k8s-v1.36.3_lws-v0.8.0/r1/report.yaml) |"
        in text
    )
    assert (
        "| v1.36.3 | v0.10.0 | not run | 3 | 0m02s | sigs.k8s.io/lws v0.10.0 cannot be had: ... 403 Forbidden |"
        in text
    )
    assert "## Kubernetes v1.36.3, LWS v0.8.0: not passed" in text
    assert (
        "- SKIPPED `test_observed_generation_catches_up`: LWS v0.8.0 has no status.observedGeneration" in text
    )
    assert "upgraded in place" not in text  # no cell was upgraded


def test_a_cell_upgraded_in_place_names_both_releases(tmp_path: Path) -> None:
    report = _report("success", None, [])
    upgraded = report.model_copy(
        update={"implementation": report.implementation.model_copy(update={"lws_upgraded_from": "v0.7.0"})}
    )
    upgraded.write(tmp_path / "k8s-v1.36.3_lws-v0.8.0" / "r1" / "report.yaml")
    cell = Cell(
        kubernetes="v1.36.3",
        lws="v0.8.0",
        exit_code=0,
        wall_s=60.0,
        report="k8s-v1.36.3_lws-v0.8.0/r1/report.yaml",
    )
    text = render(Matrix(matrix_id="m", started="t", command=["nox"], cells=[cell]), tmp_path)
    assert "| v1.36.3 | v0.7.0 -> v0.8.0 | success | 0 | 1m00s |" in text
    assert "LWS `A -> B`: the testbed started on A and was upgraded in place to B" in text
