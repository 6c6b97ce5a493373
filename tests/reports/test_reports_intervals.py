"""Intervals over repeats: the t-interval covers the mean as often as it says, Welch's covers a difference,
and a level's repeats fold into one entry whose intervals and counts a reader can trust."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from reports.intervals import T_975, t_critical, t_interval, welch_interval
from reports.repeats import fold_repeats, unfold
from reports.schema import ClientCheck, LevelResult, Result, parse_result


def test_the_t_interval_is_mean_plus_minus_t_times_the_standard_error() -> None:
    values = [10.0, 12.0, 17.0]
    interval = t_interval(values)
    assert interval is not None
    half = 4.303 * statistics.stdev(values) / math.sqrt(3)  # t(0.975, 2) from NIST's table 1.3.6.7.2
    assert interval.mean == pytest.approx(13.0)
    assert (interval.low, interval.high) == pytest.approx((13.0 - half, 13.0 + half))
    assert interval.n == 3 and interval.method == "t"


def test_one_value_has_no_interval() -> None:
    assert t_interval([5.0]) is None
    assert welch_interval([1.0, 2.0], [3.0]) is None


def test_fractional_and_large_degrees_of_freedom_never_narrow_the_interval() -> None:
    assert t_critical(2.7) == T_975[2]  # the row at or below: the wider one
    assert t_critical(35) == T_975[30]
    assert t_critical(10**6) == pytest.approx(1.96)
    with pytest.raises(ValueError):
        t_critical(0.5)
    assert all(a > b for a, b in zip(T_975.values(), list(T_975.values())[1:], strict=False))


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_the_95_percent_t_interval_covers_the_true_mean_95_percent_of_the_time(n: int) -> None:
    """4,000 seeded draws of n normal repeats; a z-interval (1.96) would cover only 70-92% at these n."""
    rng = np.random.default_rng(n)
    covered = 0
    trials = 4000
    for _ in range(trials):
        interval = t_interval(list(rng.normal(100.0, 5.0, size=n)))
        assert interval is not None
        covered += interval.low <= 100.0 <= interval.high
    assert 0.935 <= covered / trials <= 0.965


def test_welchs_interval_covers_a_difference_with_unequal_variances() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    trials = 4000
    for _ in range(trials):
        a = list(rng.normal(100.0, 1.0, size=3))
        b = list(rng.normal(90.0, 8.0, size=5))
        interval = welch_interval(a, b)
        assert interval is not None
        covered += interval[0] <= -10.0 <= interval[1]
    assert covered / trials >= 0.935


def _level(make_result, seed: int, invalid: bool = False) -> LevelResult:  # type: ignore[no-untyped-def]
    level: LevelResult = make_result(seed).results[2]
    if not invalid:
        return level
    check = ClientCheck(verdict="invalid", reasons=["sent 10.0 requests/s of the 100.0/s that were due"])
    return level.model_copy(update={"metrics": level.metrics.model_copy(update={"client": check})})


def test_repeats_fold_into_their_mean_with_an_interval_for_every_metric(make_result) -> None:  # type: ignore[no-untyped-def]
    levels = [_level(make_result, seed) for seed in (1, 2, 3)]
    folded = fold_repeats(levels)

    outs = [lv.metrics.throughput.output_tokens_per_s for lv in levels]
    assert folded.metrics.throughput.output_tokens_per_s == pytest.approx(statistics.fmean(outs))
    assert folded.intervals["output_tokens_per_s"] == t_interval(outs)
    p99s = [lv.metrics.ttft_ms.p99 for lv in levels]
    assert folded.intervals["ttft_p99"].mean == pytest.approx(statistics.fmean(p99s))
    assert folded.metrics.requests.sent == sum(lv.metrics.requests.sent for lv in levels)
    assert folded.metrics.ttft_ms.count == sum(lv.metrics.ttft_ms.count for lv in levels)
    assert [m.throughput.output_tokens_per_s for m in folded.repeats] == outs
    assert [u.metrics for u in unfold(folded)] == [lv.metrics for lv in levels]
    assert unfold(levels[0]) == [levels[0]]
    # and it survives the file format
    text = Result(results=[folded]).to_json()
    assert parse_result(text).results[0].intervals == folded.intervals


def test_one_invalid_repeat_makes_the_folded_level_invalid_and_names_the_repeat(make_result) -> None:  # type: ignore[no-untyped-def]
    clean = ClientCheck(verdict="valid")
    levels = [_level(make_result, 1), _level(make_result, 2, invalid=True), _level(make_result, 3)]
    levels[0] = levels[0].model_copy(
        update={"metrics": levels[0].metrics.model_copy(update={"client": clean})}
    )
    folded = fold_repeats(levels)
    assert folded.invalid
    assert folded.metrics.client is not None
    assert folded.metrics.client.reasons == ["repeat 2: sent 10.0 requests/s of the 100.0/s that were due"]
    assert not fold_repeats([levels[0], levels[2]]).invalid


def test_the_load_sent_the_prefix_cache_and_ttft_by_turn_fold_over_every_repeats_requests(
    make_result,
) -> None:  # type: ignore[no-untyped-def]
    from reports.schema import Distribution, InputLengthCheck, PrefixCacheView, TurnLatency

    def with_workload(
        level: LevelResult, requests: int, served: float, hits: float, turn2: float
    ) -> LevelResult:
        check = InputLengthCheck(
            requests=requests,
            requested_mean=96.0,
            served_mean=served,
            relative_error=served / 96.0 - 1,
            within_tolerance=abs(served / 96.0 - 1) <= 0.01,
        )
        turns = [
            TurnLatency(turn=1, prompt_tokens_mean=96.0, ttft_ms=Distribution(mean=800.0, count=requests)),
            TurnLatency(turn=2, prompt_tokens_mean=230.0, ttft_ms=Distribution(mean=turn2, count=requests)),
        ]
        cache = PrefixCacheView(queries=1000.0, hits=hits, hit_rate=hits / 1000, shared_fraction=0.625)
        metrics = level.metrics.model_copy(
            update={"input_lengths": check, "prefix_cache": cache, "ttft_by_turn": turns}
        )
        return level.model_copy(update={"metrics": metrics})

    levels = [
        with_workload(_level(make_result, 1), 16, 96.0, 400.0, 900.0),
        with_workload(_level(make_result, 2), 16, 96.0, 500.0, 1000.0),
        with_workload(_level(make_result, 3), 32, 97.5, 600.0, 1100.0),  # 1.6% over: this repeat mismatched
    ]
    folded = fold_repeats(levels).metrics
    assert folded.input_lengths is not None
    assert folded.input_lengths.requests == 64
    assert folded.input_lengths.served_mean == pytest.approx((16 * 96 + 16 * 96 + 32 * 97.5) / 64)
    assert folded.input_lengths.relative_error == pytest.approx(96.75 / 96 - 1)  # 0.8%: within, pooled
    assert not folded.input_lengths.within_tolerance  # but one repeat did not send the load configured
    assert folded.prefix_cache is not None and folded.prefix_cache.hit_rate == pytest.approx(1500 / 3000)
    assert [t.turn for t in folded.ttft_by_turn] == [1, 2]
    assert folded.ttft_by_turn[1].ttft_ms.mean == pytest.approx(1000.0)
    assert folded.ttft_by_turn[1].ttft_ms.count == 64
    clean = fold_repeats(levels[:2]).metrics.input_lengths
    assert clean is not None and clean.within_tolerance
