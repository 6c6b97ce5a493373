"""The tables of a run, as headers and formatted cells, shared by the Markdown and the HTML report."""

from __future__ import annotations

from dataclasses import dataclass

from reports.group_load import level_gpus
from reports.intervals import half_width
from reports.levels import level_labels
from reports.metrics import LATENCY_FORMULAS, PER_GPU_FORMULA, WINDOW_FORMULA
from reports.normalise import device_text
from reports.provenance import engine_label, in_modelled_time, modelled_scale, sim_note, sim_tag
from reports.runs import gpu_count_note, parallelism, topology_name
from reports.schema import LevelResult, Result, RunMetadata
from reports.testbed_text import testbed_text
from reports.text import MISSING, num
from reports.validity import INVALID_NOTE, invalid_label


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    right: list[bool]  # right-aligned (numeric) columns
    notes: list[str]


def per_gpu(value: float | None, gpus: int | None) -> float | None:
    return None if value is None or not gpus else value / gpus


def cell(level: LevelResult, key: str, value: float | None, divisor: int | None = None) -> str:
    """A value, and '± half-width' of its 95% interval when the level was repeated (reports/intervals.py)."""
    interval = level.intervals.get(key)
    if value is None or interval is None:
        return num(value)
    half = half_width(interval) / (divisor or 1)
    return f"{num(value)} ± {num(half)}"


def interval_and_validity_notes(result: Result, labels: list[str]) -> list[str]:
    """The notes every level table carries when its levels were repeated or a level was client-bound."""
    notes = []
    repeated = sorted({len(lv.repeats) for lv in result.results if lv.repeats})
    if repeated:
        counts = "/".join(str(n) for n in repeated)
        notes.append(
            f"x ± y: the mean of {counts} repeats ± the half-width of its 95% Student t-interval over the "
            "repeats (NIST e-Handbook 7.2.2.1); counts are summed over the repeats"
        )
    invalid = [label for label, level in zip(labels, result.results, strict=True) if level.invalid]
    if invalid:
        notes.append(f"{', '.join(invalid)}: {INVALID_NOTE}; the reasons are in the client check table")
    return notes


def _text(value: object) -> str:
    return MISSING if value is None or value == "" else str(value)


def metadata_lines(run: RunMetadata) -> list[tuple[str, str]]:
    """(heading, text) lines describing what was measured; missing fields shown as missing."""
    gpu_text = device_text(run)
    lws = f"LWS {_text(run.lws_name)} (group size {_text(run.lws_group_size)}, replicas {_text(run.lws_replicas)})"
    lines = [
        (
            "deployment",
            f"topology {_text(topology_name(run))}, TP x PP {_text(parallelism(run))}, {lws}, "
            f"{_text(run.nodes)} nodes, {gpu_text}",
        ),
        (
            "software",
            f"engine {engine_label(run)}, "
            f"model {_text(run.model)}, image {_text(run.image)}, vLLM {_text(run.vllm_version)}, "
            f"LWS {_text(run.lws_version)}, Kubernetes {_text(run.kubernetes_version)}",
        ),
        (
            "run",
            f"started {_text(run.started_at)}, finished {_text(run.finished_at)}, "
            f"suite revision {_text(run.suite_revision)}, endpoint {_text(run.endpoint)}" + testbed_text(run),
        ),
    ]
    note = sim_note(run)
    if note is not None:
        scale = modelled_scale(run)
        lines.append(
            (
                "simulation",
                note
                + (
                    f"; the tables marked [{sim_tag(run, True)}] give the same figures in modelled time"
                    if scale is not None
                    else ""
                ),
            )
        )
    note = gpu_count_note(run)
    if note:
        lines.append(("note", note))
    return lines


def level_tables(result: Result) -> list[Table]:
    """The throughput and latency tables of a run; for a simulated run each titled with its sim tag, as
    measured (wall-clock), then again in modelled time when its time scale allows the conversion."""
    from reports.client_table import client_table  # it formats with this module's helpers

    tables = [throughput_table(result), latency_table(result)]
    client = client_table(result)
    tail = [client] if client is not None else []
    tag = sim_tag(result.run)
    if tag is None:
        return tables + tail
    measured = [_titled(t, f"{tag}, wall-clock as measured") for t in tables]
    scale = modelled_scale(result.run)
    if scale is None:
        return measured + tail
    modelled = in_modelled_time(result)
    note = (
        f"modelled time: durations and latencies / {scale:g}, rates x {scale:g} (the simulated engine ran at "
        f"time scale {scale:g}); approximate, as the client's and HTTP overheads are scaled too; "
        "request rates of the load converted, concurrency unchanged"
    )
    converted = [
        _titled(t, sim_tag(result.run, True) or tag, note)
        for t in (throughput_table(modelled), latency_table(modelled))
    ]
    return measured + converted + tail


def _titled(table: Table, tag: str, note: str | None = None) -> Table:
    notes = [note, *table.notes] if note else table.notes
    return Table(f"{table.title} [{tag}]", table.headers, table.rows, table.right, notes)


def throughput_table(result: Result) -> Table:
    labels = level_labels([lv.load for lv in result.results])
    rows = []
    for label, level in zip(labels, result.results, strict=True):
        gpus = level_gpus(result.run, level)  # the GPUs of the groups that served it, where recorded
        m = level.metrics
        out = m.throughput.output_tokens_per_s
        rows.append(
            [
                invalid_label(label, level),
                str(m.requests.sent),
                str(m.requests.failed),
                cell(level, "requests_per_s", m.throughput.requests_per_s),
                cell(level, "output_tokens_per_s", out),
                cell(level, "output_tokens_per_s", per_gpu(out, gpus), gpus),
                cell(level, "total_tokens_per_s", m.throughput.total_tokens_per_s),
                cell(level, "goodput", m.goodput_requests_per_s),
                cell(level, "schedule_lag_p99", m.schedule_lag_ms.p99),
                num(m.duration_s),
            ]
        )
    notes = [
        "req/s = completed requests / window; out tok/s = sum of usage.completion_tokens / window; "
        "total tok/s adds prompt tokens",
        f"{PER_GPU_FORMULA}; {WINDOW_FORMULA}",
        "goodput = requests meeting every SLO of the level / window; "
        f"lag p99 (ms) = {LATENCY_FORMULAS['schedule_lag'][1]}",
    ]
    slo_texts = [_slo_text(level.load.slo) for level in result.results]
    if len(set(slo_texts)) == 1 and slo_texts[0]:
        notes.append(f"goodput SLOs (every level): {slo_texts[0]}")
    elif any(slo_texts):
        notes.append(
            "goodput SLOs: "
            + "; ".join(f"{label}: {text or 'none'}" for label, text in zip(labels, slo_texts, strict=True))
        )
    failures = _failure_reasons(result, labels)
    if failures:
        notes.append("failures: " + "; ".join(failures))
    notes += interval_and_validity_notes(result, labels)
    return Table(
        "Throughput",
        [
            "load",
            "sent",
            "failed",
            "req/s",
            "out tok/s",
            "out tok/s/GPU",
            "total tok/s",
            "goodput req/s",
            "lag p99 ms",
            "window s",
        ],
        rows,
        [False] + [True] * 9,
        notes,
    )


def _slo_text(slo: dict[str, float]) -> str:
    return ", ".join(f"{k}<={v:g}" for k, v in sorted(slo.items()))


def _failure_reasons(result: Result, labels: list[str]) -> list[str]:
    out = []
    for label, level in zip(labels, result.results, strict=True):
        reasons = level.metrics.requests.errors_by_reason
        if reasons:
            out.append(f"{label}: " + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())))
    return out


LATENCY_COLUMNS = [
    ("ttft", "p50"),
    ("ttft", "p99"),
    ("tpot", "p50"),
    ("tpot", "p99"),
    ("itl", "p50"),
    ("itl", "p99"),
    ("e2el", "p50"),
    ("e2el", "p99"),
]


def latency_table(result: Result) -> Table:
    labels = level_labels([lv.load for lv in result.results])
    rows = []
    for label, level in zip(labels, result.results, strict=True):
        cells = [invalid_label(label, level)]
        for family, stat in LATENCY_COLUMNS:
            value = getattr(getattr(level.metrics, f"{family}_ms"), stat)
            cells.append(cell(level, f"{family}_{stat}", value))
        rows.append(cells)
    headers = ["load"] + [f"{LATENCY_FORMULAS[f][0]} {s}" for f, s in LATENCY_COLUMNS]
    notes = [
        f"{name} = {formula}" for key, (name, formula) in LATENCY_FORMULAS.items() if key != "schedule_lag"
    ]
    notes += interval_and_validity_notes(result, labels)
    return Table("Latency (ms)", headers, rows, [False] + [True] * len(LATENCY_COLUMNS), notes)


def recovery_table(result: Result) -> Table | None:
    if not result.recovery:
        return None
    rows = []
    for rec in result.recovery:
        failed = (
            f"{rec.requests_failed}/{rec.requests_sent}"
            if rec.requests_failed is not None and rec.requests_sent is not None
            else MISSING
        )
        rows.append(
            [
                rec.fault,
                _text(rec.restart_policy),
                _text(None if rec.group_recreated is None else ("yes" if rec.group_recreated else "no")),
                num(rec.pods_replaced_s),
                num(rec.available_s),
                num(rec.first_success_s),
                failed,
            ]
        )
    tag = sim_tag(result.run)
    return Table(
        "Restart recovery (seconds from the injected fault)" + (f" [{tag}, wall-clock]" if tag else ""),
        [
            "fault",
            "restart policy",
            "group recreated",
            "pods replaced s",
            "available s",
            "first success s",
            "failed/sent",
        ],
        rows,
        [False, False, False, True, True, True, True],
        [
            "seconds from the injected fault until the group's pods were replaced, until serving was available "
            "again, and until the first request succeeded; missing values were not measured"
        ],
    )
