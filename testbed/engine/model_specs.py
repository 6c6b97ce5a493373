"""The models the simulator can serve: their shapes, and the bytes and FLOPs that follow from them.

Shapes are the published configs (Hugging Face `config.json`) of each model. Everything the performance
model needs is derived here from the shape, so a new model is one table row:
- linear layers of one block on one GPU of a TP group (rows x columns), the way the calibration file
  splits them (q/k/v heads divided by TP even below one KV head per GPU);
- weight bytes (FP8 checkpoints keep embeddings and the LM head in BF16);
- KV-cache bytes per token on one GPU (vLLM replicates KV heads when TP exceeds their number).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str  # canonical Hugging Face id
    hidden: int
    layers: int
    q_heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    gated_mlp: bool  # SwiGLU (gate+up, down) vs. plain MLP (fc1, fc2)
    tied_embeddings: bool
    weight_bytes_per_param: float  # 2 for BF16/FP16, 1 for FP8
    max_model_len: int
    calibration_key: str | None  # prefix of the shards in the calibration files, e.g. "llama-3.1-405b"

    @property
    def is_fp8(self) -> bool:
        return self.weight_bytes_per_param == 1

    def block_linears(self, tp: int) -> dict[str, tuple[float, float]]:
        """(in_features, out_features) of each linear of one block on one GPU of a TP-way group."""
        q_out = self.q_heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        mlp_in_out = self.ffn * (2 if self.gated_mlp else 1)
        return {
            "qkv": (self.hidden, (q_out + 2 * kv_out) / tp),
            "o": (q_out / tp, self.hidden),
            "gate_up": (self.hidden, mlp_in_out / tp),
            "down": (self.ffn / tp, self.hidden),
        }

    def block_params(self) -> float:
        return sum(i * o for i, o in self.block_linears(1).values())

    def total_params(self) -> float:
        embed = self.vocab * self.hidden
        head = 0 if self.tied_embeddings else self.vocab * self.hidden
        norms = (2 * self.layers + 1) * self.hidden
        return self.layers * self.block_params() + embed + head + norms

    def weight_bytes(self) -> float:
        """All weights: blocks at the checkpoint's precision, embeddings and LM head in BF16."""
        embed_head = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * self.block_params() * self.weight_bytes_per_param + embed_head * 2

    def lm_head_bytes(self, tp: int) -> float:
        return self.vocab * self.hidden * 2 / tp

    def kv_heads_per_gpu(self, tp: int) -> int:
        """vLLM keeps at least one whole KV head per GPU, replicating them when TP > kv_heads."""
        return max(1, self.kv_heads // tp)

    def kv_bytes_per_token_per_layer(self, tp: int) -> int:
        """K and V, BF16 cache, on one GPU."""
        return 2 * self.kv_heads_per_gpu(tp) * self.head_dim * 2

    def hidden_bytes_per_token(self) -> int:
        """One token of hidden state in BF16: the all-reduce payload and the pipeline hop payload."""
        return self.hidden * 2


def _llama31(
    name: str, hidden: int, layers: int, q_heads: int, ffn: int, key: str, fp8: bool = False
) -> ModelSpec:
    return ModelSpec(
        name=name,
        hidden=hidden,
        layers=layers,
        q_heads=q_heads,
        kv_heads=8,
        head_dim=128,
        ffn=ffn,
        vocab=128_256,
        gated_mlp=True,
        tied_embeddings=False,
        weight_bytes_per_param=1 if fp8 else 2,
        max_model_len=131_072,
        calibration_key=key,
    )


OPT_125M = ModelSpec(
    name="facebook/opt-125m",
    hidden=768,
    layers=12,
    q_heads=12,
    kv_heads=12,
    head_dim=64,
    ffn=3072,
    vocab=50_272,
    gated_mlp=False,
    tied_embeddings=True,
    weight_bytes_per_param=2,
    max_model_len=2048,
    calibration_key=None,
)
# The tiny Llama the real CPU engine serves in the testbed (testbed/vllm_cpu/tiny_model.py), here so the
# simulator runs with the very command line of the real one. Its checkpoint is float32; the simulator sizes
# weights in BF16 like every row (`--dtype` is not modelled), which nothing compared with the real one uses.
TINY_LLAMA = ModelSpec(
    name="lws-suite/tiny-llama",
    hidden=256,
    layers=4,
    q_heads=4,
    kv_heads=4,
    head_dim=64,
    ffn=512,
    vocab=2048,
    gated_mlp=True,
    tied_embeddings=False,
    weight_bytes_per_param=2,
    max_model_len=2048,
    calibration_key=None,
)
LLAMA_8B = _llama31("meta-llama/Llama-3.1-8B-Instruct", 4096, 32, 32, 14_336, "llama-3.1-8b")
LLAMA_70B = _llama31("meta-llama/Llama-3.1-70B-Instruct", 8192, 80, 64, 28_672, "llama-3.1-70b")
LLAMA_405B = _llama31("meta-llama/Llama-3.1-405B-Instruct", 16_384, 126, 128, 53_248, "llama-3.1-405b")
LLAMA_405B_FP8 = _llama31(
    "meta-llama/Llama-3.1-405B-Instruct-FP8", 16_384, 126, 128, 53_248, "llama-3.1-405b", fp8=True
)
LLAMA_70B_FP8 = _llama31(
    "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", 8192, 80, 64, 28_672, "llama-3.1-70b", fp8=True
)

MODELS: dict[str, ModelSpec] = {
    m.name: m for m in (OPT_125M, TINY_LLAMA, LLAMA_8B, LLAMA_70B, LLAMA_405B, LLAMA_405B_FP8, LLAMA_70B_FP8)
}

# Names seen in manifests and benchmarks for the same weights (Meta renamed "Meta-Llama-3.1-*" to
# "Llama-3.1-*"; base and instruct share a shape; Hermes-3 405B FP8 is the Llama-3.1-405B architecture).
_ALIASES: dict[str, str] = {
    "meta-llama/meta-llama-3.1-8b": LLAMA_8B.name,
    "meta-llama/meta-llama-3.1-8b-instruct": LLAMA_8B.name,
    "meta-llama/llama-3.1-8b": LLAMA_8B.name,
    "meta-llama/meta-llama-3.1-70b": LLAMA_70B.name,
    "meta-llama/meta-llama-3.1-70b-instruct": LLAMA_70B.name,
    "meta-llama/llama-3.1-70b": LLAMA_70B.name,
    "meta-llama/llama-3.3-70b-instruct": LLAMA_70B.name,
    "meta-llama/meta-llama-3.1-405b": LLAMA_405B.name,
    "meta-llama/meta-llama-3.1-405b-instruct": LLAMA_405B.name,
    "meta-llama/llama-3.1-405b": LLAMA_405B.name,
    "meta-llama/meta-llama-3.1-405b-instruct-fp8": LLAMA_405B_FP8.name,
    "meta-llama/llama-3.1-405b-fp8": LLAMA_405B_FP8.name,
    "nousresearch/hermes-3-llama-3.1-405b-fp8": LLAMA_405B_FP8.name,
    "neuralmagic/meta-llama-3.1-405b-instruct-fp8": LLAMA_405B_FP8.name,
    "neuralmagic/meta-llama-3.1-70b-instruct-fp8": LLAMA_70B_FP8.name,
}


def model_by_name(name: str) -> ModelSpec:
    """The spec for a served model id (case-insensitive, local paths resolved by their last two parts).

    The error names every known model so a user can pick one or add a row.
    """
    key = name.strip().rstrip("/")
    parts = key.split("/")
    if len(parts) > 2:  # a local path such as /models/meta-llama/Llama-3.1-8B
        key = "/".join(parts[-2:])
    lowered = key.lower()
    for canonical in MODELS:
        if canonical.lower() == lowered:
            return MODELS[canonical]
    if lowered in _ALIASES:
        return MODELS[_ALIASES[lowered]]
    raise ValueError(
        f"unknown model {name!r}; the simulator knows: {', '.join(MODELS)} (and their Meta-Llama-3.1-* names)"
    )
