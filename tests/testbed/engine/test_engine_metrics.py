"""/metrics: Prometheus text that a standard parser reads, vLLM's names per version, counters that move."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_testkit import run, serving
from prometheus_client.parser import text_string_to_metric_families

MODEL = "facebook/opt-125m"


def _samples(text: str) -> dict[str, float]:
    """name{label=value,...} -> value, leaving out the model_name and engine labels every sample has."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            extra = ",".join(
                f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("model_name", "engine")
            )
            out[s.name + (f"{{{extra}}}" if extra else "")] = s.value
    return out


def _families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_metrics_parse_and_counters_move_with_traffic() -> None:
    async def go() -> tuple[str, str]:
        async with serving(MODEL, "--time-scale", "0") as (client, _):
            before = await (await client.get("/metrics")).text()
            for _ in range(3):
                await client.post(
                    "/v1/completions", json={"prompt": "one two three", "max_tokens": 10, "ignore_eos": True}
                )
            await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 500, "min_tokens": 1})
            after = await (await client.get("/metrics")).text()
            return before, after

    before, after = run(go())
    b, a = _samples(before), _samples(after)
    assert b["vllm:prompt_tokens_total"] == 0 and a["vllm:prompt_tokens_total"] == 3 * 4 + 2
    assert a["vllm:generation_tokens_total"] >= 31
    assert a["vllm:request_success_total{finished_reason=length}"] >= 3
    assert (
        a["vllm:request_success_total{finished_reason=length}"]
        + a["vllm:request_success_total{finished_reason=stop}"]
        == 4
    )
    assert a["vllm:time_to_first_token_seconds_count"] == 4
    assert a["vllm:e2e_request_latency_seconds_count"] == 4
    assert a["vllm:inter_token_latency_seconds_count"] == a["vllm:generation_tokens_total"] - 4
    assert a["vllm:num_requests_running"] == 0 and a["vllm:num_requests_waiting"] == 0


def test_model_name_label_is_on_every_vllm_sample() -> None:
    async def go() -> str:
        async with serving(MODEL, "--time-scale", "0", "--served-model-name", "my-opt") as (client, _):
            return await (await client.get("/metrics")).text()

    vllm_families = 0
    for family in text_string_to_metric_families(run(go())):
        # vLLM's own series carry the served name; the process, Python and HTTP ones do not, nor the
        # cache-config info gauge (its labels are the config's fields), as in vLLM
        if not family.name.startswith("vllm:") or family.name == "vllm:cache_config_info":
            continue
        vllm_families += 1
        for s in family.samples:
            assert s.labels.get("model_name") == "my-opt", s
    assert vllm_families > 20


@pytest.mark.parametrize(
    ("profile", "present", "absent"),
    [
        (
            "v0.6.3",
            {"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"},
            {"vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"},
        ),
        (
            "v0.10.1",
            {"vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds"},
            set(),
        ),
        (
            "latest",
            {
                "vllm:kv_cache_usage_perc",
                "vllm:inter_token_latency_seconds",
                "vllm:request_time_per_output_token_seconds",
            },
            {"vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"},
        ),
    ],
)
def test_metric_names_follow_the_vllm_version(profile: str, present: set[str], absent: set[str]) -> None:
    async def go() -> str:
        async with serving(MODEL, "--time-scale", "0", "--profile", profile) as (client, _):
            return await (await client.get("/metrics")).text()

    families = _families(run(go()))
    assert present <= set(families), present - set(families)
    assert not (absent & set(families))
    assert families["vllm:e2e_request_latency_seconds"] == "histogram"
    assert families["vllm:time_to_first_token_seconds"] == "histogram"
    assert families["vllm:request_success"] == "counter"
    assert families["vllm:num_requests_running"] == "gauge"


def test_running_waiting_and_kv_usage_gauges_show_load_while_it_lasts() -> None:
    async def go() -> dict[str, float]:
        async with serving(
            "meta-llama/Llama-3.1-8B-Instruct", "--time-scale", "1", "--max-num-seqs", "2"
        ) as (client, _):
            tasks = [
                asyncio.ensure_future(
                    client.post(
                        "/v1/completions", json={"prompt": "p " * 2000, "max_tokens": 400, "ignore_eos": True}
                    )
                )
                for _ in range(4)
            ]
            deadline = time.monotonic() + 10
            seen: dict[str, float] = {}
            while time.monotonic() < deadline:
                seen = _samples(await (await client.get("/metrics")).text())
                if seen["vllm:num_requests_running"] == 2 and seen["vllm:num_requests_waiting"] == 2:
                    break
                await asyncio.sleep(0.01)
            for t in tasks:
                t.cancel()
            return seen

    seen = run(go())
    assert seen["vllm:num_requests_running"] == 2 and seen["vllm:num_requests_waiting"] == 2
    assert 0 < seen["vllm:kv_cache_usage_perc"] < 1


def test_simulated_latencies_land_in_the_histograms_at_time_scale() -> None:
    """At time-scale 0.2 the metrics report wall seconds, as vLLM does: the histograms agree with the gaps a client
    sees, which are 0.2 x the modelled ones (so a server-side and a client-side view can be reconciled)."""

    async def go() -> tuple[list[float], dict[str, float]]:
        async with serving(
            "meta-llama/Llama-3.1-70B-Instruct", "--tensor-parallel-size", "4", "--time-scale", "0.2"
        ) as (client, _):
            resp = await client.post(
                "/v1/completions", json={"prompt": "x", "max_tokens": 30, "ignore_eos": True, "stream": True}
            )
            arrivals: list[float] = []
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n\n" in buf:
                    frame, buf = buf.split(b"\n\n", 1)
                    if frame.startswith(b"data: {"):
                        arrivals.append(time.perf_counter())
            return arrivals, _samples(await (await client.get("/metrics")).text())

    arrivals, metrics = run(go())
    assert len(arrivals) == 30
    wall_tpot = (arrivals[-1] - arrivals[0]) / 29
    server_itl = (
        metrics["vllm:inter_token_latency_seconds_sum"] / metrics["vllm:inter_token_latency_seconds_count"]
    )
    assert 0.015 < server_itl / 0.2 < 0.04  # 70B TP4 on H100 decodes one token in ~20-30 ms (modelled)
    assert wall_tpot == pytest.approx(server_itl, rel=0.3)


def test_preemptions_are_counted_when_the_kv_cache_runs_out() -> None:
    async def go() -> dict[str, float]:

        async with serving(
            "meta-llama/Llama-3.1-8B-Instruct", "--time-scale", "0", "--gpu-memory-utilization", "0.225"
        ) as (client, _):
            body = {"prompt": list(range(1500)), "max_tokens": 600, "ignore_eos": True}
            await asyncio.gather(*(client.post("/v1/completions", json=body) for _ in range(48)))
            return _samples(await (await client.get("/metrics")).text())

    seen = run(go())
    assert seen["vllm:num_preemptions_total"] > 0
    assert seen["vllm:request_success_total{finished_reason=length}"] == 48


def test_token_histograms_have_vllms_buckets_up_to_max_model_len() -> None:
    async def go() -> str:
        async with serving(MODEL, "--time-scale", "0", "--max-model-len", "512") as (client, _):
            return await (await client.get("/metrics")).text()

    les = {
        s.labels["le"]
        for family in text_string_to_metric_families(run(go()))
        if family.name == "vllm:request_prompt_tokens"
        for s in family.samples
        if s.name.endswith("_bucket")
    }
    assert les == {"1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "+Inf"}


def test_http_requests_are_counted_by_route_as_vllms_instrumentator_counts_them() -> None:
    async def go() -> str:
        async with serving(MODEL, "--time-scale", "0", "--profile", "0.32.0") as (client, _):
            await client.get("/health")
            await client.get("/v1/models")
            await client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2})
            await client.post("/v1/completions", json={"prompt": "x", "max_tokens": -1})
            return await (await client.get("/metrics")).text()

    requests = {
        (s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(run(go()))
        if family.name == "http_requests"
        for s in family.samples
        if s.name == "http_requests_total"
    }
    # /health and /metrics are not counted (excluded handlers, as in vLLM)
    assert requests == {
        ("/v1/models", "GET", "2xx"): 1.0,
        ("/v1/completions", "POST", "2xx"): 1.0,
        ("/v1/completions", "POST", "4xx"): 1.0,
    }


def test_older_profiles_keep_their_smaller_metric_set() -> None:
    async def go(profile: str) -> set[str]:
        async with serving(MODEL, "--time-scale", "0", "--profile", profile) as (client, _):
            return set(_families(await (await client.get("/metrics")).text()))

    old, new = run(go("v0.10.1")), run(go("0.32.0"))
    added = {"vllm:prefix_cache_queries", "vllm:request_prefill_time_seconds", "vllm:cache_config_info"}
    assert added <= new and not (added & old)
    assert "http_requests" in new and "http_requests" not in old
    assert "process_cpu_seconds" in old and "process_cpu_seconds" in new  # prometheus_client's own
