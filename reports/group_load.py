"""Which LWS groups served a level, and the GPUs a level's per-GPU figures divide by.

A level measured through the loopback balancer records, per group, the requests it served (``GroupLoad``).
Its per-GPU figures divide by the GPUs of the groups that served any (``LevelMetrics.gpus_loaded``), not by
every GPU deployed: a group that got no request did not produce the level's output. Older files (and
``--endpoint`` runs) have no such record, and divide by ``run.gpus`` as before (reports/runs.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.runs import gpu_count
from reports.schema import GroupLoad, LevelResult, RunMetadata


def loaded(groups: Sequence[GroupLoad]) -> list[GroupLoad]:
    """The groups that served at least one request."""
    return [g for g in groups if (g.served or 0) > 0]


def loaded_gpus(groups: Sequence[GroupLoad] | None) -> int | None:
    """GPUs of the groups that served any request; None when unknown (no record, or a group's GPUs unknown)."""
    if not groups:
        return None
    busy = loaded(groups)
    if not busy or any(g.gpus is None for g in busy):
        return None
    return sum(g.gpus or 0 for g in busy)


def level_gpus(run: RunMetadata, level: LevelResult) -> int | None:
    """The GPUs a level's per-GPU figures divide by: those of the groups it loaded, else every GPU of the run."""
    if level.metrics.gpus_loaded is not None:
        return level.metrics.gpus_loaded
    return gpu_count(run)


def fold_groups(per_repeat: Sequence[Sequence[GroupLoad] | None]) -> list[GroupLoad] | None:
    """A level's repeats: each group's requests summed (a count unknown in any repeat stays unknown)."""
    known = [groups for groups in per_repeat if groups is not None]
    if not known:
        return None
    folded: dict[tuple[str | None, str], GroupLoad] = {}
    for groups in known:
        for g in groups:
            key = (g.group, g.pod)
            if key not in folded:
                folded[key] = g
                continue
            have = folded[key]
            folded[key] = have.model_copy(
                update={
                    "client_requests": _add(have.client_requests, g.client_requests),
                    "server_requests": _add(have.server_requests, g.server_requests),
                }
            )
    return sorted(folded.values(), key=_order)


def describe(groups: Sequence[GroupLoad] | None) -> str | None:
    """'group 0: 32 (server 32), group 1: 32 (server 32)': what each group served, for reports."""
    if not groups:
        return None
    parts = []
    for g in groups:
        name = f"group {g.group}" if g.group is not None else g.pod
        client = "?" if g.client_requests is None else str(g.client_requests)
        server = "?" if g.server_requests is None else str(g.server_requests)
        parts.append(f"{name}: {client} (server {server})")
    return ", ".join(parts)


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def _order(g: GroupLoad) -> tuple[int, str, str]:
    index = int(g.group) if g.group is not None and g.group.isdigit() else 1 << 30
    return (index, g.group or "", g.pod)
