"""The typed configuration of a run: where to send, what to send, and the load levels.

Pydantic models, frozen and strict (a value of the wrong type is refused, not converted; unknown fields
too), built with keyword arguments. Everything is validated when constructed: a bad value raises
``ConfigError`` with one line saying what was expected and what was seen, so the CLI can print it (exit code
2) and a test can assert on it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from plumbing.validation_errors import one_line

Api = Literal["completions", "chat"]
APIS: tuple[Api, ...] = ("completions", "chat")
SLO_KEYS = ("ttft_ms", "tpot_ms", "e2el_ms")


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the setting, the value and what is allowed."""


def _whole_number(value: object, info: ValidationInfo) -> object:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{info.field_name} must be a whole number >= 1, got {value!r}")
    return value


Count = Annotated[int, BeforeValidator(_whole_number)]
OptionalCount = Annotated[int | None, BeforeValidator(_whole_number)]


class _Checked(BaseModel):
    """Frozen, strict, no unknown fields; a value a validator refuses is a ConfigError of one line."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    if not TYPE_CHECKING:  # only at run time: type checkers keep each model's typed keyword signature

        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise ConfigError(one_line(exc)) from None


class Level(_Checked):
    """One load level.

    Closed loop: ``request_rate=None`` and ``concurrency=C`` keeps C requests in flight.
    Open loop: ``request_rate=R`` sends on a seeded Poisson (``burstiness=1``) or gamma schedule,
    ``burstiness=inf`` evenly spaced; ``concurrency`` then caps what is in flight (None = no cap), and
    requests held back by the cap show up as schedule lag. ``request_rate_end`` turns the level into a
    linear ramp of the rate from ``request_rate`` to ``request_rate_end``.

    A level is bounded by ``num_requests``, by ``duration_s``, or by both (whichever comes first). Open loop:
    a duration plans floor(rate x duration) arrivals (at least one), all due within it. Closed loop: no request
    is sent after ``duration_s`` from the level's start; those in flight then finish and are measured.
    """

    num_requests: OptionalCount = None
    duration_s: float | None = None
    concurrency: OptionalCount = None
    request_rate: float | None = None
    burstiness: float = 1.0
    request_rate_end: float | None = None

    @model_validator(mode="after")
    def _a_schedule_that_can_run(self) -> Level:
        if self.num_requests is None and self.duration_s is None:
            raise ValueError("a level needs num_requests, duration_s, or both (whichever comes first)")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be a finite number of seconds > 0, got {self.duration_s}")
        if self.duration_s is not None and self.request_rate_end is not None:
            raise ValueError("a ramp (request_rate_end) is bounded by num_requests, not duration_s")
        if self.request_rate is None:
            if self.concurrency is None:
                raise ValueError("a level needs a concurrency, a request rate, or both")
            if self.request_rate_end is not None:
                raise ValueError("request_rate_end (a ramp) needs a starting request_rate")
        elif not (math.isfinite(self.request_rate) and self.request_rate >= 0):
            raise ValueError(f"request_rate must be a finite number >= 0 req/s, got {self.request_rate}")
        elif self.request_rate == 0 and not self.request_rate_end:
            raise ValueError("request_rate 0 only makes sense as the start of a ramp (request_rate_end > 0)")
        if self.request_rate_end is not None and not (
            math.isfinite(self.request_rate_end) and self.request_rate_end > 0
        ):
            raise ValueError(
                f"request_rate_end must be a finite number > 0 req/s, got {self.request_rate_end}"
            )
        if not (self.burstiness > 0):
            raise ValueError(
                f"burstiness must be > 0 (1 = Poisson, inf = evenly spaced), got {self.burstiness}"
            )
        return self

    @property
    def open_loop(self) -> bool:
        return self.request_rate is not None

    @property
    def planned_requests(self) -> int | None:
        """How many requests the level sends at most; None: a closed loop bounded only by its duration."""
        if self.duration_s is None:
            return self.num_requests
        if self.request_rate is None:
            return self.num_requests
        by_time = max(1, math.floor(self.request_rate * self.duration_s + 1e-9))
        return by_time if self.num_requests is None else min(by_time, self.num_requests)

    def describe(self) -> str:
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.request_rate_end is not None:
            parts.append(f"rate {self.request_rate:g}->{self.request_rate_end:g}/s")
        elif self.request_rate is not None:
            parts.append(f"rate {self.request_rate:g}/s")
        if self.duration_s is not None:
            parts.append(f"{self.duration_s:g} s")
        return ", ".join(parts)


LengthUnit = Literal["tokens", "words"]
LENGTH_UNITS: tuple[LengthUnit, ...] = ("tokens", "words")
LengthKind = Literal["fixed", "uniform", "normal"]
LENGTH_KINDS: tuple[LengthKind, ...] = ("fixed", "uniform", "normal")


class LengthDist(_Checked):
    """How a length varies from request to request around the workload's ``input_len`` / ``output_len``
    (load/lengths.py draws it, seeded): ``fixed`` (always that length), ``uniform`` (whole numbers from
    ``min`` to ``max``), ``normal`` (mean the length, ``std_dev``, clamped to ``min``..``max``). The shapes
    and the clamps are those of inference-perf (fixed, Gaussian, min-max) and AIPerf's sampling
    distributions (https://docs.nvidia.com/aiperf/tutorials/configuration/sampling-distributions-in-yaml-configs.md).
    """

    kind: LengthKind = "fixed"
    std_dev: float = 0.0
    min: OptionalCount = None
    max: OptionalCount = None

    @model_validator(mode="after")
    def _drawable(self) -> LengthDist:
        if self.kind == "uniform" and (self.min is None or self.max is None):
            raise ValueError("a uniform length needs both min and max")
        if self.kind == "normal" and not (math.isfinite(self.std_dev) and self.std_dev > 0):
            raise ValueError(f"a normal length needs std_dev > 0, got {self.std_dev}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"length min {self.min} is above max {self.max}")
        return self


class RandomWorkload(_Checked):
    """Random-word prompts of ``input_len`` tokens of the served model (or words, ``length_unit="words"``)
    and ``output_len`` tokens, each varying as its distribution says (default: fixed)."""

    input_len: Count
    output_len: Count
    input_dist: LengthDist = Field(default_factory=LengthDist)
    output_dist: LengthDist = Field(default_factory=LengthDist)
    name: Literal["random"] = "random"


class SharedPrefixWorkload(_Checked):
    """``num_prefixes`` random prefixes of ``prefix_len`` words, each prompt one prefix plus a random
    suffix up to ``input_len`` words: exercises the server's prefix cache."""

    input_len: Count
    output_len: Count
    prefix_len: int
    num_prefixes: Count = 4
    output_dist: LengthDist = Field(default_factory=LengthDist)
    name: Literal["shared-prefix"] = "shared-prefix"

    @model_validator(mode="after")
    def _prefix_shorter_than_the_prompt(self) -> SharedPrefixWorkload:
        if not (0 < self.prefix_len < self.input_len):
            raise ValueError(
                f"prefix_len must be between 1 and input_len - 1 ({self.input_len - 1}), got {self.prefix_len}"
            )
        return self


class ShareGptWorkload(_Checked):
    """Conversations from a ShareGPT-format JSON file; the first human turn is the prompt. The output
    length is ``output_len`` if given, else estimated from the recorded reply (about 4 characters a
    token, as no tokenizer is loaded)."""

    path: Path = Field(strict=False)  # a str is taken too
    output_len: OptionalCount = None
    name: Literal["sharegpt"] = "sharegpt"

    @property
    def input_len(self) -> int | None:
        return None


class MultiTurnWorkload(_Checked):
    """Conversations of ``turns`` turns: each turn a new user message of ``input_len`` tokens (or, with
    ``path``, the human turns of a ShareGPT-format file's conversations, in order), sent with the whole
    history before it (every earlier message and the server's replies), ``think_time_s`` after the previous
    reply ended; ``output_len`` tokens a reply (with ``path`` and no ``output_len``: the recorded reply's
    length). A level's ``num_requests`` is rounded up to whole sessions; its concurrency is the number of
    sessions in flight (load/conversations.py)."""

    input_len: Count = 128
    output_len: OptionalCount = 128
    turns: Count = 3
    think_time_s: float = 0.0
    path: Path | None = Field(default=None, strict=False)
    name: Literal["multi-turn"] = "multi-turn"

    @field_validator("think_time_s")
    @classmethod
    def _non_negative(cls, value: float) -> float:
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"think_time_s must be a finite number >= 0 seconds, got {value}")
        return value


Workload = RandomWorkload | SharedPrefixWorkload | ShareGptWorkload | MultiTurnWorkload


class Timeouts(_Checked):
    """All client timeouts, in seconds. ``read_s`` is the longest silence between two reads of one
    response (so it also bounds the wait for the first token); ``request_s`` bounds a whole request."""

    connect_s: float = 10.0
    read_s: float = 600.0
    request_s: float = 6 * 3600.0
    probe_s: float = 10.0  # each call of the pre-flight check, the warm-up and the /metrics scrape

    @field_validator("connect_s", "read_s", "request_s", "probe_s")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if not (value > 0):
            raise ValueError(f"timeout {info.field_name} must be > 0 seconds, got {value}")
        return value


class SweepConfig(_Checked):
    """A run: one endpoint and model, one workload, one or more load levels run in order."""

    endpoint: str
    model: str
    workload: Workload
    levels: tuple[Level, ...] = Field(strict=False)  # a list is taken too
    api: Api = "completions"
    slo: Mapping[str, float] = Field(default_factory=dict)  # keys from SLO_KEYS, values in ms
    seed: int = 0
    ignore_eos: bool = True
    timeouts: Timeouts = Field(default_factory=Timeouts)
    scrape_server_metrics: bool = True  # GET /metrics before and after each level
    warm_connections: bool = True  # open the level's connections before its clock starts
    label: str | None = None
    headers: Mapping[str, str] = Field(default_factory=dict)
    extra_body: Mapping[str, Any] = Field(default_factory=dict)  # merged into every request body
    repeat: int = 0  # which repeat of the sweep this is (--repeats): seeds its prompts and arrivals
    # The loopback balancer in front of a Service's endpoints (load/balancer_proxy.py), when the endpoint is it
    # or the Service itself: each level then records the requests every LWS group served, counted by the client
    # (the x-lws-vllm-endpoint header) and by each leader's own /metrics read through the balancer.
    balancer: str | None = None
    # "tokens": lengths in the served model's tokens, prompts fitted with the server's POST /tokenize
    # (load/token_workload.py); "words": the earlier behaviour, words of about one token each, unchecked
    length_unit: LengthUnit = "tokens"
    length_tolerance: float = 0.01  # requested vs usage.prompt_tokens mean, relative (load/input_check.py)
    # the index of levels[0] in a longer sweep run a level at a time (the benchmark session): seeds level n as
    # level first_level + n, so each level of the longer sweep draws its own prompts
    first_level: int = 0

    @field_validator("endpoint")
    @classmethod
    def _base_url(cls, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"endpoint must be an http(s) URL such as http://127.0.0.1:8000, got {endpoint!r}"
            )
        if parts.path not in ("", "/"):
            raise ValueError(
                f"endpoint must be the server's base URL without a path (the API path comes from --api), "
                f"got {endpoint!r}"
            )
        return endpoint

    @field_validator("model")
    @classmethod
    def _named(cls, model: str) -> str:
        if not model:
            raise ValueError("model must be the served model name, got an empty string")
        return model

    @field_validator("api", mode="before")
    @classmethod
    def _known_api(cls, api: object) -> object:
        if api not in APIS:
            raise ValueError(f"api must be one of {', '.join(APIS)}, got {api!r}")
        return api

    @field_validator("levels")
    @classmethod
    def _some_levels(cls, levels: tuple[Level, ...]) -> tuple[Level, ...]:
        if not levels:
            raise ValueError("a sweep needs at least one level")
        return levels

    @field_validator("slo")
    @classmethod
    def _known_slos(cls, slo: Mapping[str, float]) -> Mapping[str, float]:
        for key, value in slo.items():
            if key not in SLO_KEYS:
                raise ValueError(f"unknown SLO {key!r}; known: {', '.join(SLO_KEYS)}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"SLO {key} must be a positive number of milliseconds, got {value}")
        return slo

    @model_validator(mode="after")
    def _multi_turn_in_tokens(self) -> SweepConfig:
        if isinstance(self.workload, MultiTurnWorkload) and self.length_unit != "tokens":
            raise ValueError("a multi-turn workload counts its turns in tokens: drop length_unit words")
        if not (math.isfinite(self.length_tolerance) and self.length_tolerance > 0):
            raise ValueError(f"length_tolerance must be a number > 0, got {self.length_tolerance}")
        return self

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
