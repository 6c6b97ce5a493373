"""The per-GPU cost model against the measured shards of the calibration files (one H100, one H200)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.engine.calibration import load_calibration
from testbed.engine.hardware import H100, H200, GpuSpec
from testbed.engine.model_specs import LLAMA_8B, LLAMA_70B, LLAMA_405B, ModelSpec
from testbed.engine.shard_costs import ShardCosts

MODELS: dict[str, ModelSpec] = {
    "llama-3.1-8b": LLAMA_8B,
    "llama-3.1-70b": LLAMA_70B,
    "llama-3.1-405b": LLAMA_405B,
}
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _shards(gpu: GpuSpec) -> list[tuple[str, ShardCosts]]:
    assert gpu.calibration_file is not None
    cal = load_calibration(gpu.calibration_file)
    return [(key, ShardCosts(gpu, MODELS[s.model_key], s.tp)) for key, s in sorted(cal.shards.items())]


def test_the_h100_file_covers_every_model_and_tp_the_issue_names() -> None:
    keys = {key for key, _ in _shards(H100)}
    assert keys == {
        "llama-3.1-8b/tp1",
        "llama-3.1-8b/tp2",
        "llama-3.1-70b/tp4",
        "llama-3.1-70b/tp8",
        "llama-3.1-405b/tp8",
        "llama-3.1-405b/tp16",
    }


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/ is not beside the work tree")
@pytest.mark.parametrize("name", ["h100_calibration.json", "h200_calibration.json"])
def test_the_packaged_calibration_files_are_the_shared_measurements(name: str) -> None:
    packaged = Path(__file__).resolve().parents[3] / "testbed" / "engine" / "data" / name
    assert json.loads(packaged.read_text()) == json.loads((SHARED / name).read_text())


@pytest.mark.parametrize("gpu", [H100, H200], ids=lambda g: g.name)
def test_shard_weight_bytes_follow_from_the_model_shape(gpu: GpuSpec) -> None:
    cal = load_calibration(gpu.calibration_file or "")
    for key, costs in _shards(gpu):
        assert costs.block_weight_bytes == pytest.approx(cal.shards[key].block_weight_bytes, rel=1e-9), key


@pytest.mark.parametrize("gpu", [H100, H200], ids=lambda g: g.name)
def test_block_linear_time_is_within_15_percent_of_measured_at_every_token_count(gpu: GpuSpec) -> None:
    cal = load_calibration(gpu.calibration_file or "")
    misses = []
    for key, costs in _shards(gpu):
        assert costs.calibrated, key
        for p in cal.shards[key].linear:
            err = costs.linear_s(p.tokens) / p.block_linear_s - 1
            if abs(err) > 0.15:
                misses.append(f"{key} tokens={p.tokens}: {err:+.1%}")
    assert not misses, misses


@pytest.mark.parametrize("gpu", [H100, H200], ids=lambda g: g.name)
def test_decode_attention_and_whole_block_are_within_15_percent_of_measured(gpu: GpuSpec) -> None:
    cal = load_calibration(gpu.calibration_file or "")
    misses = []
    for key, costs in _shards(gpu):
        shard = cal.shards[key]
        linear_at = {p.tokens: p.block_linear_s for p in shard.linear}
        for a in shard.attention:
            modelled = costs.decode_attention_for(a.batch, a.batch * a.context)
            if abs(modelled / a.decode_attention_s - 1) > 0.15:
                misses.append(
                    f"{key} attention b={a.batch} ctx={a.context}: {modelled / a.decode_attention_s - 1:+.1%}"
                )
            if a.batch in linear_at:  # one decode step of the block: linear at `batch` tokens + attention
                measured = linear_at[a.batch] + a.decode_attention_s
                block = costs.linear_s(a.batch) + modelled
                if abs(block / measured - 1) > 0.15:
                    misses.append(f"{key} block b={a.batch}: {block / measured - 1:+.1%}")
    assert not misses, misses


def test_the_roofline_alone_explains_the_h100_measurements() -> None:
    """Without the per-shard correction, the fitted roofline (4 constants per GPU) is within 15% at all
    but a few points and within 40% everywhere; the exceptions are measured anomalies, e.g. 8B TP1 at
    64 tokens is 63% above both of its neighbours."""
    cal = load_calibration("h100_calibration.json")
    errors = []
    for key, costs in _shards(H100):
        for p in cal.shards[key].linear:
            errors.append(
                (abs(costs.roofline_linear_s(p.tokens) / p.block_linear_s - 1), f"{key}@{p.tokens}")
            )
    within = sum(1 for e, _ in errors if e <= 0.15)
    assert within >= 0.95 * len(errors), sorted(errors, reverse=True)[:5]
    assert max(e for e, _ in errors) < 0.40, max(errors)


def test_uncalibrated_shards_fall_back_to_the_roofline() -> None:
    from testbed.engine.hardware import A100
    from testbed.engine.model_specs import LLAMA_405B_FP8

    fp8 = ShardCosts(H100, LLAMA_405B_FP8, 8)
    assert not fp8.calibrated
    assert fp8.linear_s(1) == fp8.roofline_linear_s(1)
    bf16 = ShardCosts(H100, LLAMA_405B, 8)
    # FP8 halves the bytes streamed per decode step: well under the BF16 shard, above half of it
    assert 0.4 < fp8.linear_s(1) / bf16.roofline_linear_s(1) < 0.7
    a100 = ShardCosts(A100, LLAMA_70B, 8)
    assert not a100.calibrated
    assert a100.linear_s(1) > ShardCosts(H100, LLAMA_70B, 8).roofline_linear_s(1)
