"""What the lint reports (a Finding, a LintReport), what it is told about the target (NodeCapacity), and what
each rule reads (LintContext: the manifest, its description, the capacity)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from manifests.describe import ManifestInfo, PodTemplateInfo
from manifests.manifest import Manifest, object_ref

Severity = Literal["error", "warning"]

DEFAULT_NODE_GPUS = 8


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    code: str
    message: str
    object: str | None = None  # e.g. "LeaderWorkerSet/vllm"

    def __str__(self) -> str:
        where = f" [{self.object}]" if self.object else ""
        return f"{self.severity}: {self.code}{where}: {self.message}"


class NodeCapacity(BaseModel):
    """What the target's nodes offer. nodes=None: unknown, so only the per-node fit is checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus_per_node: int = Field(default=DEFAULT_NODE_GPUS, ge=1)
    nodes: int | None = Field(default=None, ge=0)


class LintReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}


class LintContext(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    manifest: Manifest
    info: ManifestInfo
    capacity: NodeCapacity

    @property
    def lws_ref(self) -> str:
        return object_ref(self.manifest.lws)

    def templates(self) -> list[tuple[PodTemplateInfo, dict[str, Any]]]:
        """(info, pod template) for each template that makes pods: the worker only when size > 1."""
        lwt = (self.manifest.lws.get("spec") or {}).get("leaderWorkerTemplate") or {}
        worker = lwt.get("workerTemplate") or {}
        result = [(self.info.leader, lwt.get("leaderTemplate") or worker)]
        if self.info.size > 1:
            result.append((self.info.worker, worker))
        return result


Rule = Callable[[LintContext], Iterator[Finding]]


def error(code: str, message: str, obj: str | None = None) -> Finding:
    return Finding(severity="error", code=code, message=message, object=obj)


def warning(code: str, message: str, obj: str | None = None) -> Finding:
    return Finding(severity="warning", code=code, message=message, object=obj)
