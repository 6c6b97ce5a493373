"""What the loopback balancer (load/balancer_proxy.py) and its clients agree on: the response header naming the
pod that served a request, the control paths, and one upstream as the balancer lists it.

Standard library only: the fixture that feeds the balancer, the load generator that reads it and the proxy
process itself all import this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Added to every response the balancer passes on: the pod (LWS leader) whose port-forward carried it.
ENDPOINT_HEADER = "x-lws-vllm-endpoint"
# GET: the current endpoint set as JSON; PUT: replace it (the fixture that watches the EndpointSlices).
ENDPOINTS_PATH = "/_balancer/endpoints"
# /_balancer/pod/<pod>/<path>: that one upstream, e.g. a leader's own /metrics (never random).
POD_PREFIX = "/_balancer/pod/"


@dataclass(frozen=True)
class Upstream:
    """One ready endpoint: the leader pod, its loopback port-forward, its LWS group and that group's GPUs."""

    pod: str
    url: str  # http://127.0.0.1:<port> of `kubectl port-forward pod/<pod>`
    group: str | None = None  # the pod's leaderworkerset.sigs.k8s.io/group-index label, None when absent
    gpus: int | None = None  # GPUs of the pod's whole LWS group (leader and workers), None when unknown

    def to_json(self) -> dict[str, Any]:
        return {"pod": self.pod, "url": self.url, "group": self.group, "gpus": self.gpus}

    @classmethod
    def from_json(cls, raw: Any) -> Upstream:
        """Raises ValueError naming what is wrong with one entry of the endpoint set."""
        if not isinstance(raw, dict) or not isinstance(raw.get("pod"), str) or not raw["pod"]:
            raise ValueError(f"an endpoint needs a pod name: {raw!r}")
        url = raw.get("url")
        if not isinstance(url, str) or not url.startswith("http://127."):
            raise ValueError(
                f"endpoint {raw['pod']}: url must be http://127.x.x.x:PORT (loopback), got {url!r}"
            )
        group, gpus = raw.get("group"), raw.get("gpus")
        if group is not None and not isinstance(group, str):
            raise ValueError(f"endpoint {raw['pod']}: group must be a string or null, got {group!r}")
        if gpus is not None and (not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0):
            raise ValueError(
                f"endpoint {raw['pod']}: gpus must be a non-negative integer or null, got {gpus!r}"
            )
        return cls(raw["pod"], url.rstrip("/"), group, gpus)


def parse_endpoints(raw: Any) -> list[Upstream]:
    """The body of GET/PUT ENDPOINTS_PATH, {"endpoints": [...]}, as Upstreams (ValueError when malformed)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoints"), list):
        raise ValueError('expected {"endpoints": [{"pod": ..., "url": ..., "group": ..., "gpus": ...}, ...]}')
    upstreams = [Upstream.from_json(item) for item in raw["endpoints"]]
    pods = [u.pod for u in upstreams]
    if len(set(pods)) != len(pods):
        raise ValueError(f"a pod is listed twice: {sorted(pods)}")
    return upstreams
