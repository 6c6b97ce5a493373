"""Load levels: a short label for tables and plots, and a key that says which levels are the same."""

from __future__ import annotations

from collections.abc import Sequence

from reports.schema import LoadSpec


def level_label(load: LoadSpec) -> str:
    """'c=64', '10 req/s', '10 req/s c<=64', '5-20 req/s' (a ramp), or 'unbounded'."""
    parts = []
    if load.request_rate is not None and load.request_rate_end is not None:
        parts.append(f"{load.request_rate:g}-{load.request_rate_end:g} req/s")  # a linear ramp
    elif load.request_rate is not None:
        parts.append(f"{load.request_rate:g} req/s")
    if load.concurrency is not None:
        parts.append(f"c<={load.concurrency}" if parts else f"c={load.concurrency}")
    return " ".join(parts) if parts else "unbounded"


def level_labels(loads: Sequence[LoadSpec]) -> list[str]:
    """Labels for the levels of one run, made longer only where the short ones would collide."""
    short = [level_label(load) for load in loads]
    if len(set(short)) == len(short):
        return short
    return [
        f"{label} {load.api} {load.workload} {_lens(load)}".rstrip()
        for label, load in zip(short, loads, strict=True)
    ]


def _lens(load: LoadSpec) -> str:
    if load.input_len is None and load.output_len is None:
        return ""
    return f"{_opt(load.input_len)}/{_opt(load.output_len)} tok"


def _opt(value: int | None) -> str:
    return "?" if value is None else str(value)


def level_key(load: LoadSpec) -> tuple[object, ...]:
    """What makes two levels the same operating point. Seed, request count and duration are left out:
    repeat runs vary the seed, and the count only sets how long the point was measured."""
    return (
        load.api,
        load.workload,
        load.input_len,
        load.output_len,
        load.concurrency,
        load.request_rate,
        load.request_rate_end,
        load.burstiness,
    )


def offered_load(loads: Sequence[LoadSpec]) -> tuple[str, list[float]] | None:
    """The axis to plot levels along: concurrency or request rate when every level has it, else None."""
    if loads and all(ld.request_rate is not None for ld in loads):
        return "request rate (req/s)", [float(ld.request_rate) for ld in loads if ld.request_rate is not None]
    if loads and all(ld.concurrency is not None for ld in loads):
        return "concurrency", [float(ld.concurrency) for ld in loads if ld.concurrency is not None]
    return None
