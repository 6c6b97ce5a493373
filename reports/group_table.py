"""The report's table of requests per LWS group: which groups served each level, counted by the client (the
balancer's response header) and by each leader's own vllm:request_success_total, and the GPUs the level's
per-GPU figures divide by."""

from __future__ import annotations

from reports.group_load import level_gpus, loaded
from reports.levels import level_labels
from reports.schema import Result
from reports.tables import Table
from reports.text import MISSING


def group_table(result: Result) -> Table | None:
    """None when no level recorded its split (older files, --endpoint runs)."""
    if not any(lv.metrics.groups for lv in result.results):
        return None
    labels = level_labels([lv.load for lv in result.results])
    rows = []
    for label, level in zip(labels, result.results, strict=True):
        groups = level.metrics.groups or []
        busy = {g.pod for g in loaded(groups)}
        gpus = level_gpus(result.run, level)
        for g in groups:
            rows.append(
                [
                    label,
                    g.group if g.group is not None else MISSING,
                    g.pod,
                    _count(g.client_requests),
                    _count(g.server_requests),
                    _count(g.gpus),
                    "yes" if g.pod in busy else "no",
                    _count(gpus),
                ]
            )
    notes = [
        "client = responses whose x-lws-vllm-endpoint header named the group's leader; server = the increase of "
        "that leader's own vllm:request_success_total over the level, read from the leader",
        "per GPU of a level = value / GPUs of the groups that served any of its requests (loaded: yes)",
    ]
    headers = ["load", "group", "leader", "client req", "server req", "group GPUs", "loaded", "level GPUs"]
    return Table(
        "Requests per LWS group", headers, rows, [False, True, False, True, True, True, False, True], notes
    )


def _count(value: int | None) -> str:
    return MISSING if value is None else str(value)
