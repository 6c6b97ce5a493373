"""Names, topologies and GPU counts of runs: what a reader needs to tell one result file from another."""

from __future__ import annotations

from collections.abc import Sequence

from reports.schema import Result, RunMetadata


def topology_name(run: RunMetadata) -> str | None:
    """The named topology, else TP and PP spelled like one (tp8-pp2), else None."""
    if run.topology:
        return run.topology
    if run.tensor_parallel_size is not None and run.pipeline_parallel_size is not None:
        return f"tp{run.tensor_parallel_size}-pp{run.pipeline_parallel_size}"
    return None


def parallelism(run: RunMetadata) -> str | None:
    """'TP x PP' as measured, e.g. '8 x 2'; None when either is unknown."""
    if run.tensor_parallel_size is None or run.pipeline_parallel_size is None:
        return None
    return f"{run.tensor_parallel_size} x {run.pipeline_parallel_size}"


def gpu_count(run: RunMetadata) -> int | None:
    """GPUs serving the run: run.gpus, else TP x PP x LWS replicas when those were recorded, else None."""
    if run.gpus is not None:
        return run.gpus
    tp, pp = run.tensor_parallel_size, run.pipeline_parallel_size
    if tp is not None and pp is not None:
        return tp * pp * (run.lws_replicas if run.lws_replicas is not None else 1)
    return None


def gpu_count_note(run: RunMetadata) -> str | None:
    """Why the GPU count is what it is, when it was not recorded directly; None when run.gpus is set."""
    if run.gpus is not None:
        return None
    if gpu_count(run) is not None:
        replicas = "LWS replicas" if run.lws_replicas is not None else "1 replica assumed"
        return f"run.gpus not recorded; derived as TP x PP x {replicas}"
    return "run.gpus not recorded and TP/PP unknown; per-GPU values left empty"


def layout_key(run: RunMetadata) -> tuple[object, ...]:
    """The deployment's layout alone (topology, TP, PP, GPUs): what the gate holds one model and workload to
    (config_key without the model)."""
    topology, _model, *layout = config_key(run)
    return (topology, *layout)


def config_key(run: RunMetadata) -> tuple[object, ...]:
    """What makes two runs repeats of the same configuration (for the gate).

    Image, vLLM version and time are deliberately left out: they are what a nightly job changes. What
    produced the numbers (engine, simulator time scale, GPU product, testbed) is not part of the key either:
    runs that differ in it are refused before any matching (reports.provenance.check_mixing), or, when
    mixing is allowed, matched on purpose and reported as mixed.
    """
    return (
        topology_name(run) or run.label,
        run.model,
        run.tensor_parallel_size,
        run.pipeline_parallel_size,
        gpu_count(run),
    )


def config_name(run: RunMetadata) -> str:
    return topology_name(run) or run.label or "unnamed configuration"


def display_names(results: Sequence[Result], names: Sequence[str] | None = None) -> list[str]:
    """One distinct name per result: the given names, else label or topology, numbered when repeated."""
    if names is not None:
        if len(names) != len(results):
            raise ValueError(f"{len(names)} names given for {len(results)} results")
        base = list(names)
    else:
        base = [r.run.label or topology_name(r.run) or f"run {i + 1}" for i, r in enumerate(results)]
    seen: dict[str, int] = {}
    out = []
    for name in base:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if base.count(name) == 1 else f"{name} #{seen[name]}")
    return out
