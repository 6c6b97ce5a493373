"""Service routing: the user's `vllm-leader` ClusterIP Service reaches the leaders' vLLM API server and only
them (workers expose no API; a worker endpoint would fail requests at random). The endpoint checks read the
EndpointSlices; the API checks go through the Service (kubectl port-forward svc/...), as a user would.
Each function returns the problems it found; [] means conformant.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from fixtures.snapshot import Expectation, Snapshot


def service_endpoints_hold_exactly_the_ready_leaders(snap: Snapshot, expect: Expectation) -> list[str]:
    """MUST: the Service's EndpointSlices list every ready leader pod and no worker, on the vLLM port."""
    if snap.service is None:
        return [f"Service {expect.service_name} not found in {expect.namespace}"]
    leaders = {f"{expect.lws_name}-{g}" for g in range(expect.replicas)}
    ips = {p.name: p.ip for p in snap.pods}
    listed: dict[str, list[str]] = {}
    ports: set[int | None] = set()
    for slc in snap.endpoint_slices:
        ports |= set(slc.ports)
        for ep in slc.endpoints:
            if ep.ready:
                listed[ep.target or "?"] = list(ep.addresses)
    problems = []
    if workers := sorted(set(listed) - leaders):
        problems.append(
            f"Service {expect.service_name} routes to non-leader pods {workers}; its selector "
            f"{dict(snap.service.selector)} must select leaders only (e.g. role: leader)"
        )
    if missing := sorted(leaders - set(listed)):
        problems.append(f"Service {expect.service_name} has no ready endpoint for leader(s) {missing}")
    for name, addresses in listed.items():
        if name in leaders and ips.get(name) not in addresses:
            problems.append(
                f"endpoint for {name} has addresses {addresses}, but the pod's IP is {ips.get(name)}"
            )
    if listed and ports != {expect.port}:
        problems.append(f"endpoint ports {sorted(p for p in ports if p)}, expected [{expect.port}]")
    return problems


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return 0, f"no answer ({exc})".encode()  # nothing serves there: a finding, not a crash of the check


def _post(url: str, body: dict[str, Any], timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    return response


def models_lists_the_served_model(base_url: str, expect: Expectation, timeout: float) -> list[str]:
    """MUST: GET /v1/models through the Service lists the model the manifest serves."""
    status, body = _get(f"{base_url}/v1/models", timeout)
    if status == 0:
        return [f"GET /v1/models: {body.decode()}"]
    if status != 200:
        return [f"GET /v1/models answered {status}: {body[:200]!r}"]
    ids = [m.get("id") for m in json.loads(body).get("data", [])]
    if expect.model and expect.model not in ids:
        return [f"GET /v1/models lists {ids}, not the manifest's model {expect.model}"]
    return [] if ids else ["GET /v1/models lists no model"]


def completion_returns_tokens_and_usage(base_url: str, expect: Expectation, timeout: float) -> list[str]:
    """MUST: POST /v1/completions returns text and usage.completion_tokens equal to max_tokens (ignore_eos)."""
    body = {"model": expect.model, "prompt": "The capital of France is", "max_tokens": 8, "ignore_eos": True}
    try:
        with _post(f"{base_url}/v1/completions", body, timeout) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return [f"POST /v1/completions answered {exc.code}: {exc.read()[:300]!r}"]
    problems = []
    choices = data.get("choices") or []
    if not choices or not choices[0].get("text"):
        problems.append(f"completion has no text: {str(data)[:300]}")
    usage = data.get("usage") or {}
    if usage.get("completion_tokens") != 8:
        problems.append(f"usage.completion_tokens={usage.get('completion_tokens')}, expected 8 (ignore_eos)")
    if not usage.get("prompt_tokens"):
        problems.append(f"usage.prompt_tokens missing or 0: {usage}")
    return problems


def streaming_completion_ends_with_done_and_usage(
    base_url: str, expect: Expectation, timeout: float
) -> list[str]:
    """MUST: a streamed completion arrives as SSE `data:` frames, token chunks then a usage chunk, ending
    `data: [DONE]`, and the usage counts the tokens streamed."""
    body = {
        "model": expect.model,
        "prompt": "Count:",
        "max_tokens": 6,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    frames: list[str] = []
    try:
        with _post(f"{base_url}/v1/completions", body, timeout) as resp:
            content_type = resp.headers.get("Content-Type", "")
            for raw in resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data: "):
                    frames.append(line[6:])
    except urllib.error.HTTPError as exc:
        return [f"streaming POST /v1/completions answered {exc.code}: {exc.read()[:300]!r}"]
    problems = []
    if "text/event-stream" not in content_type:
        problems.append(f"Content-Type is {content_type!r}, expected text/event-stream")
    if not frames or frames[-1] != "[DONE]":
        return [*problems, f"stream did not end with data: [DONE] (last frame: {frames[-1:]!r})"]
    chunks = [json.loads(f) for f in frames[:-1]]
    tokens = [c for c in chunks if c.get("choices") and c["choices"][0].get("text")]
    usage = [c["usage"] for c in chunks if c.get("usage") and not c.get("choices")]
    if not tokens:
        problems.append("no token-carrying chunk in the stream")
    if not usage:
        problems.append("no final usage chunk although stream_options.include_usage was set")
    elif usage[-1].get("completion_tokens") != 6:
        problems.append(f"final usage.completion_tokens={usage[-1].get('completion_tokens')}, expected 6")
    return problems


def health_answers_ok(base_url: str, timeout: float) -> list[str]:
    """MUST: GET /health answers 200 once the server is up (503 means the engine is dead)."""
    status, body = _get(f"{base_url}/health", timeout)
    return [] if status == 200 else [f"GET /health answered {status}: {body[:200]!r}"]


def metrics_expose_vllm_series(base_url: str, timeout: float) -> list[str]:
    """MUST: GET /metrics is Prometheus text with vLLM's own series (vllm:...), e.g. request and token counters."""
    status, body = _get(f"{base_url}/metrics", timeout)
    if status != 200:
        return [f"GET /metrics answered {status}"]
    text = body.decode(errors="replace")
    wanted = ["vllm:num_requests_running", "vllm:generation_tokens_total", "vllm:e2e_request_latency_seconds"]
    missing = [name for name in wanted if name not in text]
    return [f"/metrics lacks {missing}"] if missing else []
