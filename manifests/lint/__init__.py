"""The preflight lint: a pure function from manifest objects to findings, run before anything is written
to a cluster. Each rule is a small function; each finding says what is wrong and what to do.

The rules, by family: the leader's launch command (launch.py), what pods ask of nodes (resources.py), how clients
reach the leader (routing.py), image and vLLM version drift (versions.py), the LWS object itself and its pod templates' process isolation (lws_object.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from manifests.describe import describe
from manifests.lint.findings import (
    DEFAULT_NODE_GPUS,
    Finding,
    LintContext,
    LintReport,
    NodeCapacity,
    Rule,
    Severity,
    error,
)
from manifests.lint.launch import check_command, check_mp_launch, check_parallelism
from manifests.lint.lws_object import (
    check_name,
    check_plain_text_tokens,
    check_process_isolation,
    check_restart_policy,
)
from manifests.lint.resources import check_gpu_resources, check_shm
from manifests.lint.routing import check_readiness, check_service
from manifests.lint.versions import check_version_drift
from manifests.manifest import Manifest
from manifests.render import to_yaml

__all__ = [
    "DEFAULT_NODE_GPUS",
    "RULES",
    "DryRun",
    "Finding",
    "LintReport",
    "NodeCapacity",
    "Severity",
    "lint",
]

DryRun = Callable[[str], Sequence[str]]

RULES: tuple[Rule, ...] = (
    check_command,
    check_parallelism,
    check_mp_launch,
    check_gpu_resources,
    check_service,
    check_restart_policy,
    check_version_drift,
    check_plain_text_tokens,
    check_shm,
    check_readiness,
    check_name,
    check_process_isolation,
)


def lint(
    manifest: Manifest,
    capacity: NodeCapacity | None = None,
    dry_run: DryRun | None = None,
) -> LintReport:
    """Check a manifest before it is applied. dry_run, if given, gets the YAML and returns server errors."""
    ctx = LintContext(manifest=manifest, info=describe(manifest), capacity=capacity or NodeCapacity())
    findings = [finding for rule in RULES for finding in rule(ctx)]
    if dry_run is not None:
        for message in dry_run(to_yaml(list(manifest.objects))):
            findings.append(error("dry-run", f"the API server rejects the manifest: {message}"))
    return LintReport(source=manifest.source, findings=tuple(findings))
