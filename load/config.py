"""The typed configuration of a run: where to send, what to send, and the load levels.

Everything is validated when constructed; a ``ConfigError`` says what was expected and what was seen,
so the CLI can print it as one line (exit code 2) and a test can assert on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

Api = Literal["completions", "chat"]
APIS: tuple[Api, ...] = ("completions", "chat")
SLO_KEYS = ("ttft_ms", "tpot_ms", "e2el_ms")


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the setting, the value and what is allowed."""


@dataclass(frozen=True)
class Level:
    """One load level.

    Closed loop: ``request_rate=None`` and ``concurrency=C`` keeps C requests in flight.
    Open loop: ``request_rate=R`` sends on a seeded Poisson (``burstiness=1``) or gamma schedule,
    ``burstiness=inf`` evenly spaced; ``concurrency`` then caps what is in flight (None = no cap), and
    requests held back by the cap show up as schedule lag. ``request_rate_end`` turns the level into a
    linear ramp of the rate from ``request_rate`` to ``request_rate_end``.
    """

    num_requests: int
    concurrency: int | None = None
    request_rate: float | None = None
    burstiness: float = 1.0
    request_rate_end: float | None = None

    def __post_init__(self) -> None:
        _positive_int("num_requests", self.num_requests)
        if self.concurrency is not None:
            _positive_int("concurrency", self.concurrency)
        if self.request_rate is None:
            if self.concurrency is None:
                raise ConfigError("a level needs a concurrency, a request rate, or both")
            if self.request_rate_end is not None:
                raise ConfigError("request_rate_end (a ramp) needs a starting request_rate")
        elif not (math.isfinite(self.request_rate) and self.request_rate >= 0):
            raise ConfigError(f"request_rate must be a finite number >= 0 req/s, got {self.request_rate}")
        elif self.request_rate == 0 and not self.request_rate_end:
            raise ConfigError("request_rate 0 only makes sense as the start of a ramp (request_rate_end > 0)")
        if self.request_rate_end is not None and not (
            math.isfinite(self.request_rate_end) and self.request_rate_end > 0
        ):
            raise ConfigError(
                f"request_rate_end must be a finite number > 0 req/s, got {self.request_rate_end}"
            )
        if not (self.burstiness > 0):
            raise ConfigError(
                f"burstiness must be > 0 (1 = Poisson, inf = evenly spaced), got {self.burstiness}"
            )

    @property
    def open_loop(self) -> bool:
        return self.request_rate is not None

    def describe(self) -> str:
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.request_rate_end is not None:
            parts.append(f"rate {self.request_rate:g}->{self.request_rate_end:g}/s")
        elif self.request_rate is not None:
            parts.append(f"rate {self.request_rate:g}/s")
        return ", ".join(parts)


@dataclass(frozen=True)
class RandomWorkload:
    """Random-word prompts of ``input_len`` words (about one token each) and ``output_len`` tokens."""

    input_len: int
    output_len: int
    name: str = field(default="random", init=False)

    def __post_init__(self) -> None:
        _positive_int("input_len", self.input_len)
        _positive_int("output_len", self.output_len)


@dataclass(frozen=True)
class SharedPrefixWorkload:
    """``num_prefixes`` random prefixes of ``prefix_len`` words, each prompt one prefix plus a random
    suffix up to ``input_len`` words: exercises the server's prefix cache."""

    input_len: int
    output_len: int
    prefix_len: int
    num_prefixes: int = 4
    name: str = field(default="shared-prefix", init=False)

    def __post_init__(self) -> None:
        _positive_int("input_len", self.input_len)
        _positive_int("output_len", self.output_len)
        _positive_int("num_prefixes", self.num_prefixes)
        if not (0 < self.prefix_len < self.input_len):
            raise ConfigError(
                f"prefix_len must be between 1 and input_len - 1 ({self.input_len - 1}), got {self.prefix_len}"
            )


@dataclass(frozen=True)
class ShareGptWorkload:
    """Conversations from a ShareGPT-format JSON file; the first human turn is the prompt. The output
    length is ``output_len`` if given, else estimated from the recorded reply (about 4 characters a
    token, as no tokenizer is loaded)."""

    path: Path
    output_len: int | None = None
    name: str = field(default="sharegpt", init=False)

    def __post_init__(self) -> None:
        if self.output_len is not None:
            _positive_int("output_len", self.output_len)

    @property
    def input_len(self) -> int | None:
        return None


Workload = RandomWorkload | SharedPrefixWorkload | ShareGptWorkload


@dataclass(frozen=True)
class Timeouts:
    """All client timeouts, in seconds. ``read_s`` is the longest silence between two reads of one
    response (so it also bounds the wait for the first token); ``request_s`` bounds a whole request."""

    connect_s: float = 10.0
    read_s: float = 600.0
    request_s: float = 6 * 3600.0
    probe_s: float = 10.0  # each call of the pre-flight check, the warm-up and the /metrics scrape

    def __post_init__(self) -> None:
        for name in ("connect_s", "read_s", "request_s", "probe_s"):
            value = getattr(self, name)
            if not (value > 0):
                raise ConfigError(f"timeout {name} must be > 0 seconds, got {value}")


@dataclass(frozen=True)
class SweepConfig:
    """A run: one endpoint and model, one workload, one or more load levels run in order."""

    endpoint: str
    model: str
    workload: Workload
    levels: tuple[Level, ...]
    api: Api = "completions"
    slo: Mapping[str, float] = field(default_factory=dict)  # keys from SLO_KEYS, values in ms
    seed: int = 0
    ignore_eos: bool = True
    timeouts: Timeouts = field(default_factory=Timeouts)
    scrape_server_metrics: bool = True  # GET /metrics before and after each level
    warm_connections: bool = True  # open the level's connections before its clock starts
    label: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # merged into every request body
    repeat: int = 0  # which repeat of the sweep this is (--repeats): seeds its prompts and arrivals

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"endpoint must be an http(s) URL such as http://127.0.0.1:8000, got {self.endpoint!r}"
            )
        if parts.path not in ("", "/"):
            raise ConfigError(
                f"endpoint must be the server's base URL without a path (the API path comes from --api), "
                f"got {self.endpoint!r}"
            )
        if not self.model:
            raise ConfigError("model must be the served model name, got an empty string")
        if self.api not in APIS:
            raise ConfigError(f"api must be one of {', '.join(APIS)}, got {self.api!r}")
        if not self.levels:
            raise ConfigError("a sweep needs at least one level")
        for key, value in self.slo.items():
            if key not in SLO_KEYS:
                raise ConfigError(f"unknown SLO {key!r}; known: {', '.join(SLO_KEYS)}")
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"SLO {key} must be a positive number of milliseconds, got {value}")

    @property
    def base_url(self) -> str:
        return self.endpoint.rstrip("/")


def levels_from_lists(
    num_requests: int,
    concurrencies: Sequence[int | None],
    request_rates: Sequence[float | None] = (None,),
    burstiness: float = 1.0,
    request_rate_end: float | None = None,
) -> tuple[Level, ...]:
    """Every combination of concurrency and rate, concurrency-major, as the CLI lists them."""
    return tuple(
        Level(
            num_requests=num_requests,
            concurrency=c,
            request_rate=r,
            burstiness=burstiness,
            request_rate_end=request_rate_end,
        )
        for c, r in itertools.product(concurrencies, request_rates)
    )


def _positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
