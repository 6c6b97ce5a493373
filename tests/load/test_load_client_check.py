"""The client check's parts: each threshold says why it was crossed and stays quiet under it; the loop
monitor sees a blocked loop; rates, concurrency and peaks come out of the records as defined."""

from __future__ import annotations

import asyncio
from time import perf_counter

from load.client_check import (
    MAX_LOOP_LAG_P99_MS,
    LoopMonitor,
    client_check,
    saturation_reasons,
)
from load.config import Level
from load.records import RequestRecord
from reports.schema import ClientCheck, Distribution


def _record(i: int, ready: float, sent: float, finished: float) -> RequestRecord:
    r = RequestRecord(index=i, scheduled=ready, ready=ready, sent=sent, chunk_times=[finished])
    r.finished = finished
    r.output_tokens = 1
    return r


def _monitor(cpu_s: float = 0.1, wall_s: float = 1.0, lags_s: tuple[float, ...] = (0.0001,)) -> LoopMonitor:
    m = LoopMonitor()
    m.cpu_s, m.wall_s, m.lags_s = cpu_s, wall_s, list(lags_s)
    return m


def test_an_open_loop_level_sent_on_schedule_is_valid() -> None:
    records = [_record(i, i * 0.01, i * 0.01 + 0.0005, i * 0.01 + 0.05) for i in range(101)]
    check = client_check(Level(num_requests=101, request_rate=100.0), records, _monitor())
    assert check.verdict == "valid" and check.reasons == []
    assert check.achieved_rate is not None and abs(check.achieved_rate - 100.0) < 0.5
    assert check.configured_rate == 100.0
    assert check.peak_in_flight == 5  # each request lasts 50 ms, one is sent every 10 ms
    assert check.dispatch_lag_ms.p99 is not None and abs(check.dispatch_lag_ms.p99 - 0.5) < 1e-6


def test_an_open_loop_level_sent_at_half_its_rate_is_invalid_and_says_so() -> None:
    records = [_record(i, i * 0.01, i * 0.02, i * 0.02 + 0.05) for i in range(101)]
    check = client_check(Level(num_requests=101, request_rate=100.0), records, _monitor())
    assert check.verdict == "invalid"
    assert any("requests/s of the 100.0/s that were due (50%" in r for r in check.reasons)
    assert any(r.startswith("dispatch lag p99 990.0 ms") for r in check.reasons)


def test_closed_loop_slots_left_idle_by_the_client_are_invalid() -> None:
    # four slots; each request is in flight 10 ms, then its slot waits 5 ms for the client to send again
    busy = [_record(i, i * 0.015, i * 0.015 + 0.005, i * 0.015 + 0.015) for i in range(40)]
    check = client_check(Level(num_requests=40, concurrency=4), busy, _monitor())
    assert check.achieved_concurrency is not None and abs(check.achieved_concurrency - 4 * 2 / 3) < 1e-6
    assert any("slots waited for the client" in r for r in check.reasons)
    prompt = [_record(i, i * 0.01, i * 0.01 + 0.0001, i * 0.01 + 0.01) for i in range(40)]
    assert client_check(Level(num_requests=40, concurrency=4), prompt, _monitor()).verdict == "valid"


def test_a_late_loop_is_blamed_on_the_client_when_busy_and_on_other_processes_when_idle() -> None:
    late = ClientCheck(
        verdict="valid", loop_lag_ms=Distribution(p99=MAX_LOOP_LAG_P99_MS * 2), cpu_fraction=0.9
    )
    (busy,) = saturation_reasons(late, offered_rate=None, busy_fraction=None)
    assert "behind the client's own work" in busy
    idle = late.model_copy(update={"cpu_fraction": 0.1})
    (waited,) = saturation_reasons(idle, offered_rate=None, busy_fraction=None)
    assert "waited for a CPU" in waited
    calm = late.model_copy(
        update={"loop_lag_ms": Distribution(p99=MAX_LOOP_LAG_P99_MS / 2), "cpu_fraction": 0.5}
    )
    assert saturation_reasons(calm, offered_rate=None, busy_fraction=None) == []


def test_a_client_using_its_whole_core_is_invalid() -> None:
    check = ClientCheck(verdict="valid", cpu_fraction=0.99)
    (reason,) = saturation_reasons(check, offered_rate=None, busy_fraction=None)
    assert reason.startswith("client CPU 99% of one core")


def test_the_monitor_sees_a_loop_blocked_for_80_ms_and_the_cpu_it_burnt() -> None:
    async def scenario() -> LoopMonitor:
        monitor = LoopMonitor(tick_s=0.005)
        monitor.start()
        await asyncio.sleep(0)  # one loop turn: the monitor arms its first wake-up
        end = perf_counter() + 0.08
        while perf_counter() < end:  # the client's own work, holding the loop
            pass
        await monitor.stop()  # the wake-up is overdue by about 75 ms: counted though it never fired
        return monitor

    monitor = asyncio.run(scenario())
    assert len(monitor.lags_s) == 1 and monitor.lags_s[0] > 0.07
    assert monitor.wall_s is not None and monitor.wall_s >= 0.08
    # the busy loop burnt CPU (less than its wall time when other processes share the core), one thread's worth
    assert monitor.cpu_s is not None and 0.005 < monitor.cpu_s <= monitor.wall_s * 1.05
