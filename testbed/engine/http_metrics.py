"""The HTTP families of vLLM's API server, from 0.32: prometheus-fastapi-instrumentator's default set.

Same names, HELP texts, labels and buckets as the instrumentator's `metrics.default`; /metrics, /health,
/load, /ping, /version and /server_info are not counted, as in vLLM.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary

# prometheus-fastapi-instrumentator's defaults (metrics.default)
HTTP_HIGHR_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    1.5,
    2,
    2.5,
    3,
    3.5,
    4,
    4.5,
    5,
    7.5,
    10,
    30,
    60,
)
HTTP_LOWR_BUCKETS = (0.1, 0.5, 1)
HTTP_EXCLUDED = frozenset({"/metrics", "/health", "/load", "/ping", "/version", "/server_info"})
_SIZE = "Only value of header is respected. Otherwise ignored. No percentile calculated. "


class HttpMetrics:
    """prometheus-fastapi-instrumentator's default set, as vLLM's API server registers it."""

    def __init__(self, reg: CollectorRegistry) -> None:
        self.total = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=reg,
        )
        self.request_size = Summary(
            "http_request_size_bytes",
            f"Content length of incoming requests by handler. {_SIZE}",
            ["handler"],
            registry=reg,
        )
        self.response_size = Summary(
            "http_response_size_bytes",
            f"Content length of outgoing responses by handler. {_SIZE}",
            ["handler"],
            registry=reg,
        )
        self.highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate percentile "
            "calculations. ",
            buckets=HTTP_HIGHR_BUCKETS,
            registry=reg,
        )
        self.lowr = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by handler is "
            "important. ",
            ["method", "handler"],
            buckets=HTTP_LOWR_BUCKETS,
            registry=reg,
        )

    def observe(
        self, handler: str, method: str, status: int, request_bytes: int, response_bytes: int, seconds: float
    ) -> None:
        """One HTTP request, as the instrumentator counts it (handler = the route template)."""
        if handler in HTTP_EXCLUDED:
            return
        self.total.labels(method, f"{status // 100}xx", handler).inc()
        self.request_size.labels(handler).observe(request_bytes)
        self.response_size.labels(handler).observe(response_bytes)
        self.highr.observe(seconds)
        self.lowr.labels(method, handler).observe(seconds)
