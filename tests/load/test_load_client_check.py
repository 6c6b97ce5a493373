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
    warnings,
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


def test_a_loop_late_from_the_clients_own_work_is_invalid_and_from_waiting_for_a_cpu_a_warning() -> None:
    late = Distribution(p99=MAX_LOOP_LAG_P99_MS * 2)
    own = ClientCheck(verdict="valid", loop_lag_ms=late, loop_lag_busy_ms=late)
    (reason,) = saturation_reasons(own, offered_rate=None, busy_fraction=None)
    assert reason.startswith("event-loop lag p99 40.0 ms of the client's own work")
    assert warnings(own) == []
    waited = own.model_copy(update={"loop_lag_busy_ms": Distribution(p99=1.0)})
    assert saturation_reasons(waited, offered_rate=None, busy_fraction=None) == []
    (warning,) = warnings(waited)
    assert "mostly waiting for a CPU" in warning
    calm = ClientCheck(verdict="valid", loop_lag_ms=Distribution(p99=MAX_LOOP_LAG_P99_MS / 2))
    assert saturation_reasons(calm, offered_rate=None, busy_fraction=None) == [] and warnings(calm) == []


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
    # on a CPU the whole time it was late (less when other processes took the core for a while)
    assert 0 < monitor.busy_lags_s[0] <= monitor.lags_s[0]
    assert monitor.wall_s is not None and monitor.wall_s >= 0.08
    # the busy loop burnt CPU (less than its wall time when other processes share the core), one thread's worth
    assert monitor.cpu_s is not None and 0.005 < monitor.cpu_s <= monitor.wall_s * 1.05


def test_a_slow_burst_of_sends_is_weighed_against_request_length_in_closed_loop_only() -> None:
    # every request waited 150 ms for the client before it left, and then took 10 s
    records = [_record(i, i * 10.0, i * 10.0 + 0.15, i * 10.0 + 10.15) for i in range(20)]
    closed = client_check(Level(num_requests=20, concurrency=1), records, _monitor())
    assert closed.verdict == "valid", closed.reasons  # 98.5% of slot time in flight
    opened = client_check(Level(num_requests=20, request_rate=0.1), records, _monitor())
    assert [r.split(" (")[0] for r in opened.reasons] == ["dispatch lag p99 150.0 ms"]
