"""GPUs and fabrics the performance model knows, with where each number comes from.

Two kinds of numbers live here, and they are kept apart on purpose:
- datasheet figures (HBM bandwidth, dense tensor-core FLOP/s, memory), used only for the back-of-envelope
  roofline in `bench.py` and to scale an uncalibrated GPU;
- effective figures fitted to measurements (`data/h100_calibration.json`, `data/h200_calibration.json`:
  per-block linear layers and decode attention on one GPU), which the performance model uses.

The fit (`calibration.roofline_fit`: least squares on log error over every shard and token count of the
file, started from the datasheet) gives, per GPU, the weight-streaming bandwidth of a GEMM, its compute
rate, a fixed cost per kernel and the exponent of the smooth maximum between the two bounds, and the
floor, KV-read bandwidth and exponent of decode attention (see `shard_costs.py`); the constants below are
that fit, rounded (a test holds them to it). A100 80GB has no measurement here: its effective figures are
its datasheet figures times the H100's measured/datasheet ratios (`carry_roofline`). How far that rule
is off is measured by predicting H200 from H100 and the reverse: a median of 4-6.4% but up to 49% on single
points (docs/calibration.md).

Communication cannot be measured on one GPU, so it comes from published NCCL and vLLM figures
(cited per field as C1..C8; docs/sources.md names each source):
- intra-node all-reduce over NVLink/NVSwitch: vLLM's custom all-reduce for messages up to 8 MB
  (about 10 us + 8.75 us/MB on 8x H100, C7; ~10-15 us small-message floor with CUDA graphs, C5/C6),
  NCCL beyond it (33 us + 5.8 us/MB on 8x H100 SXM, fitted to C1 between 1 MB and 16 MB);
- inter-node fabrics: a two-node all-reduce and the pipeline send/recv between nodes (C2, C3, C4).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MB = 1_000_000.0
GIB = float(2**30)


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: memory, datasheet peaks, and the effective costs fitted to measurements."""

    name: str
    memory_bytes: int
    # Datasheet (SXM parts), for the independent roofline and for scaling uncalibrated GPUs.
    datasheet_hbm_bytes_per_s: float
    datasheet_bf16_flops: float
    # Effective, fitted to the calibration file of this GPU (or scaled from H100's fit).
    gemm_bytes_per_s: float  # weight streaming of a GEMM at small token counts
    gemm_bf16_flops: float  # GEMM compute rate at large token counts
    kernel_overhead_s: float  # fixed cost per linear kernel (launch, tail)
    gemm_blend_p: float  # smooth max exponent between memory and compute bounds
    attn_floor_s: float  # decode attention kernel floor (one kernel per layer)
    attn_bytes_per_s: float  # KV-cache read bandwidth of decode attention
    attn_blend_p: float
    fp8_compute_factor: float  # FP8 GEMM rate relative to BF16 (Hopper tensor cores: 2x; Ampere: weight-only)
    # NVLink/NVSwitch all-reduce inside one node (see module docstring).
    custom_ar_latency_s: float
    custom_ar_s_per_byte: float
    custom_ar_max_bytes: float
    nccl_ar_latency_s: float
    nccl_ar_s_per_byte: float
    # Host-side cost per decoder layer outside the measured GEMMs and attention: norms, rotary
    # embedding, activation and residual kernels (about four small kernels of ~3 us each).
    misc_per_layer_s: float
    calibration_file: str | None


H100 = GpuSpec(
    name="H100",
    memory_bytes=85_017_493_504,  # "NVIDIA H100 80GB HBM3", as torch reports it (calibration file)
    datasheet_hbm_bytes_per_s=3.35e12,
    datasheet_bf16_flops=989e12,
    gemm_bytes_per_s=2.75e12,
    gemm_bf16_flops=700e12,
    kernel_overhead_s=6e-6,
    gemm_blend_p=6.0,
    attn_floor_s=21.5e-6,
    attn_bytes_per_s=3.1e12,
    attn_blend_p=1.5,
    fp8_compute_factor=2.0,
    custom_ar_latency_s=10e-6,
    custom_ar_s_per_byte=8.75e-6 / MB,
    custom_ar_max_bytes=8 * 2**20,
    nccl_ar_latency_s=33e-6,
    nccl_ar_s_per_byte=5.8e-6 / MB,
    misc_per_layer_s=12e-6,
    calibration_file="h100_calibration.json",
)

H200 = GpuSpec(
    name="H200",
    memory_bytes=150_109_880_320,  # "NVIDIA H200" 141 GB, as torch reports it (calibration file)
    datasheet_hbm_bytes_per_s=4.8e12,
    datasheet_bf16_flops=989e12,
    # The fit on every anchor of its file (`python -m testbed.engine.calibration`), rounded.
    gemm_bytes_per_s=4.59e12,
    gemm_bf16_flops=725e12,
    kernel_overhead_s=12.8e-6,
    gemm_blend_p=11.0,
    attn_floor_s=27.7e-6,
    attn_bytes_per_s=4.28e12,
    attn_blend_p=2.9,
    fp8_compute_factor=2.0,
    custom_ar_latency_s=10e-6,
    custom_ar_s_per_byte=8.75e-6 / MB,
    custom_ar_max_bytes=8 * 2**20,
    nccl_ar_latency_s=33e-6,
    nccl_ar_s_per_byte=5.8e-6 / MB,
    misc_per_layer_s=12e-6,
    calibration_file="h200_calibration.json",
)

# A100 80GB SXM: 2.039 TB/s, 312 TFLOP/s dense BF16, NVLink 3 (600 GB/s, busbw ~230 GB/s). Not measured:
# H100's effective/datasheet ratios applied. FP8 runs weight-only (Marlin) at BF16 compute rate.
_A100_BW_RATIO = 2.039e12 / 3.35e12
A100 = GpuSpec(
    name="A100",
    memory_bytes=85_899_345_920,  # 80 GiB
    datasheet_hbm_bytes_per_s=2.039e12,
    datasheet_bf16_flops=312e12,
    gemm_bytes_per_s=H100.gemm_bytes_per_s * _A100_BW_RATIO,
    gemm_bf16_flops=H100.gemm_bf16_flops * 312e12 / 989e12,
    kernel_overhead_s=7e-6,
    gemm_blend_p=H100.gemm_blend_p,
    attn_floor_s=24e-6,
    attn_bytes_per_s=H100.attn_bytes_per_s * _A100_BW_RATIO,
    attn_blend_p=H100.attn_blend_p,
    fp8_compute_factor=1.0,
    custom_ar_latency_s=12e-6,
    custom_ar_s_per_byte=8.75e-6 / MB * 900 / 600,
    custom_ar_max_bytes=8 * 2**20,
    nccl_ar_latency_s=35e-6,
    nccl_ar_s_per_byte=5.8e-6 / MB * 900 / 600,
    misc_per_layer_s=14e-6,
    calibration_file=None,
)

GPUS: dict[str, GpuSpec] = {"H100": H100, "H200": H200, "A100": A100}
_GPU_ALIASES = {
    "H100": "H100",
    "H100-80GB": "H100",
    "H100-SXM": "H100",
    "NVIDIA-H100-80GB-HBM3": "H100",
    "H200": "H200",
    "H200-141GB": "H200",
    "NVIDIA-H200": "H200",
    "A100": "A100",
    "A100-80GB": "A100",
    "A100-SXM4-80GB": "A100",
    "NVIDIA-A100-SXM4-80GB": "A100",
}


def gpu_by_name(name: str) -> GpuSpec:
    """Look up a GPU by name or alias (case-insensitive); the error lists the valid names."""
    key = _GPU_ALIASES.get(name.strip().upper().replace(" ", "-").replace("_", "-"))
    if key is None:
        raise ValueError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")
    return GPUS[key]


@dataclass(frozen=True)
class Interconnect:
    """The fabric between nodes: what a cross-node all-reduce and a pipeline hop cost.

    `allreduce_*` is the alpha-beta cost of an all-reduce whose group spans two nodes (TP across nodes).
    `p2p_*` is one pipeline send/recv between nodes; `node_bytes_per_s` is what one node can push to the
    other in aggregate (all NICs), which the eight TP ranks of a stage share.
    `control_latency_s` is the per-step cost of reaching the other node's workers with the step's inputs
    (vLLM broadcasts scheduler metadata to every rank each step; across nodes that is a network round).
    """

    name: str
    allreduce_latency_s: float
    allreduce_s_per_byte: float
    p2p_latency_s: float
    node_bytes_per_s: float
    control_latency_s: float
    description: str


INFINIBAND = Interconnect(
    name="infiniband",
    # 2-node all-reduce floor ~40-55 us on IB/EFA (C2: 38.4 us at 8 B on 4 nodes; C3: 55.5 us at 2 nodes).
    # Bandwidth: 2-node busbw reaches ~480 GB/s at GB sizes (C3) and ~330 GB/s on 4 nodes (C2); at the
    # tens of MB of a prefill step we take 200 GB/s busbw, i.e. algbw = 200 * 16/30 = 107 GB/s.
    allreduce_latency_s=55e-6,
    allreduce_s_per_byte=1.0 / (200e9 * 16 / 30),
    # send/recv between nodes 40-53 us, 42-43 GB/s per GPU NIC (C3), eight NICs per node.
    p2p_latency_s=45e-6,
    node_bytes_per_s=8 * 42e9,
    control_latency_s=0.1e-3,  # a small message round across the fabric each step (estimate)
    description="8x400 Gb/s NDR InfiniBand (or EFA) per node, GPUDirect RDMA",
)

ETHERNET = Interconnect(
    name="ethernet",
    # NCCL over TCP sockets on the front-end network (no RDMA). GCP's GPUDirect-TCPXO already shows
    # ~125 us for a small 2-node all-reduce (C4); plain sockets through the host stack are slower still:
    # 300 us is our estimate, not a measurement. Bandwidth is fitted to S1's TP16 collapse without
    # InfiniBand (4.52 -> 0.64 req/s, published.py): algbw ~7.8 GB/s, i.e. a ring all-reduce (each byte
    # crosses the node boundary ~1.9x per direction) over ~15 GB/s of Ethernet (2x100 GbE or one 200 GbE);
    # a single send/recv stream (the pipeline hop) gets ~10 GB/s. Plausible, not measured.
    allreduce_latency_s=300e-6,
    allreduce_s_per_byte=2.0 / 12.5e9 * 0.8,
    p2p_latency_s=150e-6,
    node_bytes_per_s=10e9,
    # The step's inputs reach the other node's workers over the same TCP path each step (estimate).
    control_latency_s=2e-3,
    description="one 100 Gb/s Ethernet NIC per node, NCCL over TCP sockets",
)

INTERCONNECTS: dict[str, Interconnect] = {"infiniband": INFINIBAND, "ethernet": ETHERNET}
_INTERCONNECT_ALIASES = {
    "infiniband": "infiniband",
    "ib": "infiniband",
    "efa": "infiniband",
    "rdma": "infiniband",
    "ethernet": "ethernet",
    "eth": "ethernet",
    "tcp": "ethernet",
    "roce-off": "ethernet",
}


def interconnect_by_name(name: str) -> Interconnect:
    """Look up a node interconnect by name or alias; the error lists the valid names."""
    key = _INTERCONNECT_ALIASES.get(name.strip().lower())
    if key is None:
        raise ValueError(
            f"unknown interconnect {name!r}; known: {', '.join(INTERCONNECTS)} (aliases ib, tcp)"
        )
    return INTERCONNECTS[key]


def carry_roofline(source: GpuSpec, target: GpuSpec) -> GpuSpec:
    """`target` with the effective roofline of `source` carried over by datasheet ratios: GEMM and KV-read
    bandwidth scale with HBM bandwidth, the GEMM rate with dense BF16 FLOP/s, and the per-kernel cost, the
    attention floor and both blend exponents stay as fitted. This is what a GPU without a calibration file
    relies on (A100's bandwidths and rate are H100's scaled this way); `calibration/` measures its error
    by predicting H200 from H100 and the reverse. The result keeps `target`'s calibration file: strip it
    (`dataclasses.replace(..., calibration_file=None)`) to use the roofline alone."""
    bandwidth = target.datasheet_hbm_bytes_per_s / source.datasheet_hbm_bytes_per_s
    compute = target.datasheet_bf16_flops / source.datasheet_bf16_flops
    return replace(
        target,
        gemm_bytes_per_s=source.gemm_bytes_per_s * bandwidth,
        gemm_bf16_flops=source.gemm_bf16_flops * compute,
        kernel_overhead_s=source.kernel_overhead_s,
        gemm_blend_p=source.gemm_blend_p,
        attn_floor_s=source.attn_floor_s,
        attn_bytes_per_s=source.attn_bytes_per_s * bandwidth,
        attn_blend_p=source.attn_blend_p,
    )
