"""Where a run's numbers came from, and what they mean in modelled time.

Four fields of ``RunMetadata`` say what produced a run's numbers: ``engine`` (the suite's simulator "sim",
real vLLM's CPU build "vllm-cpu", real vLLM on a real cluster "vllm", an "external" endpoint),
``sim_time_scale``, ``gpu_product`` and ``testbed``. Runs that differ in any of them measure different
things, so the gate and the comparison refuse to mix them (``MixedRunsError``) unless told to
(``allow_mixed``), and then say which fields differ. So do four fields of what was measured: the run's
``model`` and its levels' ``workload``, ``input_len``, ``output_len`` and ``length_unit`` (``WORKLOAD_FIELDS``): the same
topology serving another model, or other prompts, is another experiment. A field that was not recorded
(None, e.g. ``engine`` in files written before it existed) is "unknown", which differs from every known value.

The simulator at time scale s maps modelled time v to wall time v x s (testbed/engine/runner.py): at s = 0.2
it runs five times faster than the GPUs it models. ``in_modelled_time`` converts a simulated run's figures
back: durations and latencies / s, rates and throughputs x s. That is approximate (the client's and the HTTP
path's own overheads are scaled too) and impossible at s = 0 (pacing off: latencies are overhead only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reports.repeats import level_intervals, unfold
from reports.schema import Distribution, LevelMetrics, LevelResult, LoadSpec, Result, RunMetadata, Throughput

SIM = "sim"
PROVENANCE_FIELDS = ("engine", "sim_time_scale", "gpu_product", "testbed")
# model from the run, the rest per level; a length in tokens is not one in words (length_unit)
WORKLOAD_FIELDS = ("model", "workload", "input_len", "output_len", "length_unit")
UNKNOWN = "unknown"
ALLOW_MIXED_FLAG = "--allow-mixed"
MODELLED_FLAG = "--modelled-time"


class MixedRunsError(ValueError):
    """Runs that differ in engine, time scale, GPU product, testbed, model, workload or lengths, given where they
    must not mix."""


def is_simulated(run: RunMetadata) -> bool:
    """Served by the suite's simulator: engine "sim", or, in files older than the engine field, a recorded
    sim_time_scale (only the simulator has one)."""
    return run.engine == SIM or (run.engine is None and run.sim_time_scale is not None)


def modelled_scale(run: RunMetadata) -> float | None:
    """The simulator's time scale when the run's figures can be converted to modelled time, else None."""
    if is_simulated(run) and run.sim_time_scale:
        return run.sim_time_scale
    return None


def sim_tag(run: RunMetadata, modelled: bool = False) -> str | None:
    """'sim 0.2x' ('sim 0.2x, modelled time' once converted), 'sim unpaced', 'sim, time scale unknown';
    None for a run that is not simulated."""
    if not is_simulated(run):
        return None
    scale = run.sim_time_scale
    if scale is None:
        return "sim, time scale unknown"
    if scale == 0:
        return "sim unpaced"
    return f"sim {scale:g}x" + (", modelled time" if modelled else "")


def engine_label(run: RunMetadata) -> str:
    """What served the run, for a run table: the sim tag, else the engine, else 'unknown'."""
    return sim_tag(run) or run.engine or UNKNOWN


def tagged(name: str, run: RunMetadata, modelled: bool = False) -> str:
    """The run's name with its sim tag where a number of it stands: 'tp16-pp1 [sim 0.2x]'."""
    tag = sim_tag(run, modelled and modelled_scale(run) is not None)
    return f"{name} [{tag}]" if tag else name


def sim_note(run: RunMetadata, modelled: bool = False) -> str | None:
    """One sentence saying what a simulated run's figures are; None for a run that is not simulated."""
    tag = sim_tag(run, modelled and modelled_scale(run) is not None)
    if tag is None:
        return None
    scale = run.sim_time_scale
    if scale is None:
        return f"[{tag}]: the suite's simulated engine; its time scale was not recorded, figures as measured"
    if scale == 0:
        return (
            f"[{tag}]: the suite's simulated engine with pacing off (time scale 0): latencies are the "
            "simulator's overhead only and have no meaning in modelled time"
        )
    if modelled:
        return (
            f"[{tag}]: the suite's simulated engine at time scale {scale:g}, converted to modelled time "
            f"(durations and latencies / {scale:g}, rates x {scale:g}; approximate)"
        )
    pace = (
        "real time"
        if scale == 1
        else f"{1 / scale:g}x faster than the modelled GPUs"
        if scale < 1
        else f"{scale:g}x slower than the modelled GPUs"
    )
    return (
        f"[{tag}]: the suite's simulated engine at time scale {scale:g} ({pace}); figures are wall-clock "
        f"as measured (in modelled time: latencies / {scale:g}, throughput x {scale:g}; {MODELLED_FLAG} "
        "shows them so)"
    )


# mixing ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldMix:
    """One provenance field whose value differs between runs: each value shown with the runs that have it."""

    field: str
    values: dict[str, list[str]]  # shown value -> sources, in order of first appearance

    def text(self) -> str:
        """'engine: sim (baseline a.json) vs vllm-cpu (candidate b.json)'."""
        parts = []
        for value, sources in self.values.items():
            shown = ", ".join(sources[:2]) + (f" +{len(sources) - 2} more" if len(sources) > 2 else "")
            parts.append(f"{value} ({shown})")
        return f"{self.field}: " + " vs ".join(parts)


def _shown(name: str, run: RunMetadata) -> str:
    value = getattr(run, name)
    if value is None and name == "sim_time_scale" and run.engine not in (None, SIM):
        return "none"  # a real engine has no time scale: not unknown
    return _text(value)


def _text(value: object) -> str:
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _load_field(load: LoadSpec, name: str) -> object:
    """A level's workload field; a length unit not recorded is words (files written before lengths in tokens)."""
    value = getattr(load, name)
    return "words" if name == "length_unit" and value is None else value


def _measured(name: str, result: Result) -> str:
    """A workload field of a run: the model, or the levels' value ('1024', or '128/1024' when its levels differ)."""
    if name == "model":
        return _text(result.run.model)
    values = sorted({_text(_load_field(level.load, name)) for level in result.results})
    return "/".join(values) if values else UNKNOWN


def mixed_fields(
    runs: Sequence[tuple[str, Result]], names: Sequence[str] = (*PROVENANCE_FIELDS, *WORKLOAD_FIELDS)
) -> list[FieldMix]:
    """The provenance and workload fields (of ``names``) on which the (source, result) pairs differ; empty when
    they all agree."""
    mixes = []
    fields = [(name, lambda r, n=name: _shown(n, r.run)) for name in PROVENANCE_FIELDS if name in names]
    fields += [(name, lambda r, n=name: _measured(n, r)) for name in WORKLOAD_FIELDS if name in names]
    for name, shown in fields:
        values: dict[str, list[str]] = {}
        for source, result in runs:
            values.setdefault(shown(result), []).append(source)
        if len(values) > 1:
            mixes.append(FieldMix(name, values))
    return mixes


def refusal(mixes: Sequence[FieldMix]) -> str:
    """The one line an input error prints: the first differing field with its values, the others named."""
    first, rest = mixes[0], mixes[1:]
    also = f"; also {', '.join(m.field for m in rest)}" if rest else ""
    return (
        f"runs differ in {first.text()}{also}; refusing to mix them "
        f"({ALLOW_MIXED_FLAG} compares them anyway and says so)"
    )


def allowed_note(mixes: Sequence[FieldMix]) -> str:
    """What a report prints when mixing was allowed."""
    return f"Mixing allowed ({ALLOW_MIXED_FLAG}): the runs differ in " + "; ".join(m.text() for m in mixes)


def check_mixing(runs: Sequence[tuple[str, Result]], allow_mixed: bool) -> list[FieldMix]:
    """The differing fields (to print when ``allow_mixed``); MixedRunsError when not allowed."""
    mixes = mixed_fields(runs)
    if mixes and not allow_mixed:
        raise MixedRunsError(refusal(mixes))
    return mixes


def check_mixing_per_configuration(
    runs: Sequence[tuple[str, Result]], key: Callable[[Result], object], allow_mixed: bool
) -> list[FieldMix]:
    """As ``check_mixing`` for the gate, which judges each configuration (``key``) against itself: what produced
    the numbers must agree across all runs, what was measured only between the runs of one configuration. A
    sweep whose topologies serve different models (tp8-pp2 405B, tp8-pp1 70B) is gated, each against its own
    baseline; the same topology measured on another model or workload is refused."""
    mixes = mixed_fields(runs, PROVENANCE_FIELDS)
    groups: dict[object, list[tuple[str, Result]]] = {}
    for source, result in runs:
        groups.setdefault(key(result), []).append((source, result))
    for group in groups.values():
        mixes += mixed_fields(group, WORKLOAD_FIELDS)
    if mixes and not allow_mixed:
        raise MixedRunsError(refusal(mixes))
    return mixes


# modelled time ---------------------------------------------------------------------------------------------
def _dist(d: Distribution, scale: float) -> Distribution:
    return d.model_copy(
        update={
            stat: None if (v := getattr(d, stat)) is None else v / scale
            for stat in ("mean", "p50", "p90", "p95", "p99", "max")
        }
    )


def _rate(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _duration(value: float | None, scale: float) -> float | None:
    return None if value is None else value / scale


def _load(load: LoadSpec, scale: float) -> LoadSpec:
    return load.model_copy(
        update={
            "request_rate": _rate(load.request_rate, scale),
            "request_rate_end": _rate(load.request_rate_end, scale),
            "duration_s": _duration(load.duration_s, scale),
            # goodput was judged in wall-clock time: latency <= t there is latency / s <= t / s modelled
            "slo": {k: (v / scale if k.endswith("_ms") else v) for k, v in load.slo.items()},
        }
    )


def _metrics(m: LevelMetrics, scale: float) -> LevelMetrics:
    t = m.throughput
    return m.model_copy(
        update={
            "ttft_ms": _dist(m.ttft_ms, scale),
            "tpot_ms": _dist(m.tpot_ms, scale),
            "itl_ms": _dist(m.itl_ms, scale),
            "e2el_ms": _dist(m.e2el_ms, scale),
            "schedule_lag_ms": _dist(m.schedule_lag_ms, scale),
            "throughput": Throughput(
                requests_per_s=_rate(t.requests_per_s, scale),
                output_tokens_per_s=_rate(t.output_tokens_per_s, scale),
                total_tokens_per_s=_rate(t.total_tokens_per_s, scale),
            ),
            "goodput_requests_per_s": _rate(m.goodput_requests_per_s, scale),
            "duration_s": _duration(m.duration_s, scale),
        }
    )


def _level(level: LevelResult, scale: float) -> LevelResult:
    repeats = [_metrics(m, scale) for m in level.repeats]
    converted = level.model_copy(update={"repeats": repeats})
    return level.model_copy(
        update={
            "load": _load(level.load, scale),
            "metrics": _metrics(level.metrics, scale),
            "repeats": repeats,
            "intervals": level_intervals(unfold(converted)) if repeats else {},
            "timeline": [
                s.model_copy(
                    update={"t_s": s.t_s / scale, "output_tokens_per_s": _rate(s.output_tokens_per_s, scale)}
                )
                for s in level.timeline
            ],
        }
    )


def in_modelled_time(result: Result) -> Result:
    """A simulated run's figures in modelled time (durations / s, rates x s); any other result unchanged.

    Counts, token totals, server metrics and restart-recovery times (Kubernetes' own, not the engine's) are
    left as they are.
    """
    scale = modelled_scale(result.run)
    if scale is None:
        return result
    return result.model_copy(update={"results": [_level(lv, scale) for lv in result.results]})
