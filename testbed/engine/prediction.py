"""What the engine model predicts for a run: its topology, GPU, interconnect and load, priced by the same
performance model and scheduler the simulator paces tokens with (``simulate.py``), so a team sees how far
its cluster is from what its hardware allows.

Each prediction names the model's version (a digest of the model's source and calibration data: any change
to how a step is priced changes it) and its calibration error: the validation figures of
``docs/calibration.md`` (``calibration.validation.validate``), for the scenario that matches the prediction.
On a GPU with its own calibration file that is the held-out-shard scenario (the roofline predicting shards
it was not fitted on); on a GPU without one (A100), the cross-GPU rule it relies on (H200 predicted from
H100).
Those figures are per-kernel errors; an end-to-end latency adds the host and scheduling model on top.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from testbed.engine.calibration.validation import scenarios, validate
from testbed.engine.hardware import gpu_by_name, interconnect_by_name
from testbed.engine.model_specs import model_by_name
from testbed.engine.perf_model import PerfModel, SchedulerConfig, Topology
from testbed.engine.profiles import resolve_profile
from testbed.engine.simulate import fixed_lengths, simulate

_HERE = Path(__file__).parent
# What prices a step: a change to any of these is a new model version.
_MODEL_SOURCES = (
    "perf_model.py",
    "shard_costs.py",
    "scheduler.py",
    "hardware.py",
    "model_specs.py",
    "profiles.py",
    "simulate.py",
)


@dataclass(frozen=True)
class LoadPoint:
    """One level's load: closed loop at ``concurrency``, or open loop at ``request_rate`` (Poisson)."""

    num_requests: int
    input_len: int
    output_len: int
    concurrency: int | None = None
    request_rate: float | None = None


@dataclass(frozen=True)
class PredictedPoint:
    ttft_p50_ms: float | None
    tpot_p50_ms: float | None
    itl_p50_ms: float | None
    e2el_p50_ms: float | None
    output_tokens_per_s: float
    requests_per_s: float


@dataclass(frozen=True)
class CalibrationError:
    scenario: str  # docs/calibration.md's scenario name
    median_pct: float  # of |predicted / measured - 1| over the validation anchors
    p90_pct: float
    max_pct: float


@dataclass(frozen=True)
class Prediction:
    model_version: str
    model: str
    gpu: str
    interconnect: str
    tp: int
    pp: int
    gpus_per_node: int
    vllm_profile: str
    calibration: CalibrationError
    points: tuple[PredictedPoint, ...]  # one per load point, in order


@cache
def model_version() -> str:
    """``perf-model-<12 hex>``: a digest of the pricing sources and the calibration data files."""
    digest = hashlib.blake2b(digest_size=6)
    files = [_HERE / name for name in _MODEL_SOURCES] + sorted((_HERE / "data").glob("*.json"))
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"perf-model-{digest.hexdigest()}"


@cache
def calibration_error(gpu_name: str) -> CalibrationError:
    gpu = gpu_by_name(gpu_name)
    name = f"{gpu.name.lower()}-held-out-shards" if gpu.calibration_file else "h200-from-h100"
    scenario = next(s for s in scenarios() if s.name == name)
    s = validate(scenario).summary()
    return CalibrationError(name, s.median * 100, s.p90 * 100, s.max * 100)


def predict(
    model: str,
    tp: int,
    pp: int,
    loads: Sequence[LoadPoint],
    *,
    gpu: str = "H100",
    interconnect: str = "infiniband",
    gpus_per_node: int = 8,
    vllm_version: str | None = None,
) -> Prediction:
    """Predicted figures for every load point; ValueError names an unknown model, GPU or interconnect,
    or a model that does not fit."""
    profile = resolve_profile(profile=vllm_version, image=None)
    spec = model_by_name(model)
    topo = Topology(
        gpu=gpu_by_name(gpu),
        tp=tp,
        pp=pp,
        gpus_per_node=gpus_per_node,
        interconnect=interconnect_by_name(interconnect),
    )
    sched = SchedulerConfig(
        max_model_len=spec.max_model_len,
        enable_chunked_prefill=profile.chunked_prefill_default(spec.max_model_len, pp),
        per_stage_schedulers=profile.per_stage_schedulers,
        chunked_prefill_budget=profile.chunked_prefill_budget,
    )
    perf = PerfModel(model=spec, topology=topo, scheduler=sched, host=profile.overheads())
    points = tuple(_point(perf, load) for load in loads)
    return Prediction(
        model_version=model_version(),
        model=spec.name,
        gpu=topo.gpu.name,
        interconnect=topo.interconnect.name,
        tp=tp,
        pp=pp,
        gpus_per_node=gpus_per_node,
        vllm_profile=profile.version_text,
        calibration=calibration_error(topo.gpu.name),
        points=points,
    )


def _point(perf: PerfModel, load: LoadPoint) -> PredictedPoint:
    lengths = fixed_lengths(load.num_requests, load.input_len, load.output_len)
    if load.request_rate is not None:
        result = simulate(perf, lengths, rate=load.request_rate)
    else:
        result = simulate(perf, lengths, concurrency=load.concurrency)
    s = result.summary()

    def ms(x: float | None) -> float | None:
        return None if x is None else x * 1e3

    return PredictedPoint(
        ttft_p50_ms=ms(s.ttft_median_s),
        tpot_p50_ms=ms(s.tpot_median_s),
        itl_p50_ms=ms(s.itl_median_s),
        e2el_p50_ms=ms(s.e2el_median_s),
        output_tokens_per_s=s.output_throughput,
        requests_per_s=s.request_throughput,
    )
