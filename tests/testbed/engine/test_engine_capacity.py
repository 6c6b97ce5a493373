"""One engine process at time-scale 0 streams at least 20,000 tokens/s to a client in another process."""

from __future__ import annotations

import pytest

from testbed.engine.capacity import measure_capacity


@pytest.mark.slow
def test_one_engine_process_streams_at_least_20k_tokens_per_second_without_errors() -> None:
    result = measure_capacity(concurrency=32, seconds=1.5, max_tokens=256)
    assert result.errors == 0, result.first_error
    assert result.requests > 0
    assert result.tokens_per_s >= 20_000, result
