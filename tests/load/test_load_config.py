"""The load configs' rules: a value a rule refuses is a ConfigError of one line naming the setting and what is
allowed (the CLI prints it with exit code 2: tests/load/test_load_cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from load.config import (
    ConfigError,
    Level,
    RandomWorkload,
    SharedPrefixWorkload,
    ShareGptWorkload,
    SweepConfig,
    Timeouts,
)

ONE = Level(num_requests=1, concurrency=1)
WORKLOAD = RandomWorkload(input_len=8, output_len=4)


def sweep(**changes: Any) -> SweepConfig:
    return SweepConfig(
        **{
            "endpoint": "http://127.0.0.1:8000",
            "model": "m",
            "workload": WORKLOAD,
            "levels": (ONE,),
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Level(num_requests=0, concurrency=1), "num_requests must be a whole number >= 1, got 0"),
        (
            lambda: Level(num_requests=True, concurrency=1),
            "num_requests must be a whole number >= 1, got True",
        ),
        (lambda: Level(num_requests=5, concurrency=0), "concurrency must be a whole number >= 1, got 0"),
        (lambda: Level(num_requests=5, concurrency="2"), "concurrency must be a whole number >= 1, got '2'"),
        (
            lambda: Level(num_requests=5, concurrency=2, request_rate_end=3.0),
            "request_rate_end (a ramp) needs a starting request_rate",
        ),
        (
            lambda: Level(num_requests=5, request_rate=-1.0),
            "request_rate must be a finite number >= 0 req/s, got -1.0",
        ),
        (
            lambda: Level(num_requests=5, request_rate=float("inf")),
            "request_rate must be a finite number >= 0 req/s, got inf",
        ),
        (
            lambda: Level(num_requests=5, request_rate=0.0),
            "request_rate 0 only makes sense as the start of a ramp",
        ),
        (
            lambda: Level(num_requests=5, request_rate=1.0, request_rate_end=float("nan")),
            "request_rate_end must be a finite number > 0 req/s, got nan",
        ),
        (lambda: Level(num_requests=5, request_rate="fast"), "request_rate: Input should be a valid number"),
        (lambda: Level(num_requests=5, concurrency=1, rate=3.0), "rate: Extra inputs are not permitted"),
        (lambda: RandomWorkload(input_len=0, output_len=4), "input_len must be a whole number >= 1, got 0"),
        (
            lambda: SharedPrefixWorkload(input_len=10, output_len=4, prefix_len=5, num_prefixes=0),
            "num_prefixes must be a whole number >= 1, got 0",
        ),
        (
            lambda: ShareGptWorkload(path=Path("sg.json"), output_len=0),
            "output_len must be a whole number >= 1",
        ),
        (lambda: Timeouts(connect_s=0.0), "timeout connect_s must be > 0 seconds, got 0.0"),
        (lambda: Timeouts(probe_s=-1.0), "timeout probe_s must be > 0 seconds, got -1.0"),
        (
            lambda: sweep(endpoint="localhost:8000"),
            "endpoint must be an http(s) URL such as http://127.0.0.1:8000",
        ),
        (
            lambda: sweep(endpoint="http://127.0.0.1:8000/v1"),
            "endpoint must be the server's base URL without a path",
        ),
        (lambda: sweep(model=""), "model must be the served model name, got an empty string"),
        (lambda: sweep(api="embeddings"), "api must be one of completions, chat, got 'embeddings'"),
        (lambda: sweep(levels=()), "a sweep needs at least one level"),
        (lambda: sweep(slo={"ttft": 5.0}), "unknown SLO 'ttft'; known: ttft_ms, tpot_ms, e2el_ms"),
        (
            lambda: sweep(slo={"tpot_ms": 0.0}),
            "SLO tpot_ms must be a positive number of milliseconds, got 0.0",
        ),
    ],
)
def test_a_refused_value_is_one_config_error_line(build: Any, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build()
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_configs_are_frozen_and_lists_and_string_paths_are_taken() -> None:
    config = sweep(levels=[ONE, Level(num_requests=2, request_rate=5.0)])
    assert config.levels == (ONE, Level(num_requests=2, request_rate=5.0))
    assert ShareGptWorkload(path="sg.json").path == Path("sg.json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="frozen"):
        config.seed = 1  # type: ignore[misc]
    assert config.model_copy(update={"repeat": 2}).repeat == 2 and config.repeat == 0
