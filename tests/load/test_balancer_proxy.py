"""The loopback balancer (load/balancer_proxy.py) in its own process, in front of two reference servers on
127.0.0.1: requests spread over both and name the pod that served them, streams pass through, the endpoint set
is replaced as the fixture tells it, and a missing or dead upstream is a clear error, never a hang."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from load_testkit import MODEL, reference_server

from load.balancer_api import ENDPOINT_HEADER, ENDPOINTS_PATH, POD_PREFIX, Upstream
from load.balancer_process import BalancerProcess
from load.config import Level, RandomWorkload, SweepConfig
from load.runner import run_sweep_sync
from plumbing.ports import free_port


@pytest.fixture
def two_servers() -> Iterator[tuple[str, str]]:
    with reference_server("--itl-ms", "1") as (a, _), reference_server("--itl-ms", "1") as (b, _):
        yield a, b


@pytest.fixture
def balancer() -> Iterator[BalancerProcess]:
    proxy = BalancerProcess().start()
    try:
        yield proxy
    finally:
        proxy.close()


def _request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_sweep_through_the_balancer_loads_every_group_and_counts_what_each_served(
    two_servers: tuple[str, str], balancer: BalancerProcess
) -> None:
    a, b = two_servers
    balancer.put_endpoints([Upstream("vllm-0", a, "0", 16), Upstream("vllm-1", b, "1", 16)])
    config = SweepConfig(
        endpoint=balancer.url,
        model=MODEL,
        workload=RandomWorkload(input_len=8, output_len=4),
        levels=(Level(num_requests=80, concurrency=4),),
        balancer=balancer.url,
    )
    level = run_sweep_sync(config).result.results[0]
    assert level.metrics.requests.completed == 80
    groups = level.metrics.groups
    assert groups is not None
    assert [(g.group, g.pod, g.gpus) for g in groups] == [("0", "vllm-0", 16), ("1", "vllm-1", 16)]
    counts = [g.client_requests for g in groups]
    assert sum(c or 0 for c in counts) == 80
    # random choice per request: each of two upstreams gets Binomial(80, 1/2); below 20 has probability < 1e-5
    assert all((c or 0) >= 20 for c in counts), counts
    # each server's own counter, read from it through /_balancer/pod/<pod>/metrics, agrees with the header
    assert [g.server_requests for g in groups] == counts
    assert level.metrics.gpus_loaded == 32


def test_one_upstream_gets_everything_and_only_its_gpus_count(
    two_servers: tuple[str, str], balancer: BalancerProcess
) -> None:
    a, _ = two_servers
    balancer.put_endpoints([Upstream("vllm-0", a, "0", 16)])
    config = SweepConfig(
        endpoint=balancer.url,
        model=MODEL,
        workload=RandomWorkload(input_len=8, output_len=4),
        levels=(Level(num_requests=10, concurrency=2),),
        balancer=balancer.url,
    )
    level = run_sweep_sync(config).result.results[0]
    assert [(g.pod, g.client_requests) for g in level.metrics.groups or []] == [("vllm-0", 10)]
    assert level.metrics.gpus_loaded == 16


def test_the_endpoint_set_is_replaced_and_listed(
    two_servers: tuple[str, str], balancer: BalancerProcess
) -> None:
    a, b = two_servers
    balancer.put_endpoints([Upstream("vllm-0", a, "0", 16), Upstream("vllm-1", b, "1", 16)])
    assert [u.pod for u in balancer.endpoints()] == ["vllm-0", "vllm-1"]
    balancer.put_endpoints([Upstream("vllm-1", b, "1", 16)])
    assert balancer.endpoints() == [Upstream("vllm-1", b, "1", 16)]
    served = {_request(balancer.url + "/v1/models")[1][ENDPOINT_HEADER] for _ in range(10)}
    assert served == {"vllm-1"}  # the dropped endpoint gets nothing


def test_a_streamed_completion_passes_through_whole(
    two_servers: tuple[str, str], balancer: BalancerProcess
) -> None:
    a, _ = two_servers
    balancer.put_endpoints([Upstream("vllm-0", a, "0", 16)])
    body = json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 5, "stream": True}).encode()
    direct = _request(a + "/v1/completions", "POST", body)
    through = _request(balancer.url + "/v1/completions", "POST", body)
    assert through[0] == 200 and through[1][ENDPOINT_HEADER] == "vllm-0"
    assert through[1]["Content-Type"].startswith("text/event-stream")
    events = [line for line in through[2].decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) == len(
        [line for line in direct[2].decode().splitlines() if line.startswith("data: ")]
    )


def test_a_pod_path_reaches_that_upstream_only(
    two_servers: tuple[str, str], balancer: BalancerProcess
) -> None:
    a, b = two_servers
    balancer.put_endpoints([Upstream("vllm-0", a, "0", 16), Upstream("vllm-1", b, "1", 16)])
    seen = {_request(balancer.url + POD_PREFIX + "vllm-1/v1/models")[1][ENDPOINT_HEADER] for _ in range(10)}
    assert seen == {"vllm-1"}
    status, _, text = _request(balancer.url + POD_PREFIX + "vllm-9/metrics")
    assert status == 404 and "no ready endpoint 'vllm-9'" in text.decode()


def test_no_ready_endpoint_is_a_503_saying_so(balancer: BalancerProcess) -> None:
    status, _, text = _request(balancer.url + "/v1/models")
    assert status == 503
    assert "the Service has no ready endpoints" in json.loads(text)["error"]["message"]


def test_a_dead_upstream_is_a_502_naming_it(balancer: BalancerProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    balancer.put_endpoints([Upstream("vllm-0", dead, "0", 16)])
    status, headers, text = _request(balancer.url + "/v1/models")
    assert status == 502 and headers[ENDPOINT_HEADER] == "vllm-0"
    assert "upstream vllm-0" in json.loads(text)["error"]["message"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"endpoints": [{"pod": "p", "url": "http://10.0.0.5:8080"}]}, "loopback"),
        (
            {
                "endpoints": [
                    {"pod": "p", "url": "http://127.0.0.1:1"},
                    {"pod": "p", "url": "http://127.0.0.1:2"},
                ]
            },
            "twice",
        ),
        ({"endpoints": [{"url": "http://127.0.0.1:1"}]}, "needs a pod name"),
        ({"endpoints": [{"pod": "p", "url": "http://127.0.0.1:1", "gpus": -1}]}, "non-negative"),
        ({"pods": []}, "expected"),
    ],
)
def test_a_bad_endpoint_set_is_refused_and_the_old_one_kept(
    balancer: BalancerProcess, body: dict[str, object], error: str
) -> None:
    balancer.put_endpoints([Upstream("vllm-0", "http://127.0.0.1:9", "0", 16)])
    status, _, text = _request(balancer.url + ENDPOINTS_PATH, "PUT", json.dumps(body).encode())
    assert status == 400 and error in json.loads(text)["error"]
    assert [u.pod for u in balancer.endpoints()] == ["vllm-0"]
