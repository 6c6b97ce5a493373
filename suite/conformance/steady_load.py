"""A steady trickle of short streaming completions through the Service while a fault is injected.

Open loop at a fixed rate, so the count of requests during an outage does not depend on how fast they fail;
each request is the load generator's own (load.request.send_request), so a failure is a record with a reason.
Every request sent is accounted as completed or failed when the load stops; requests still in flight at
stop are awaited (bounded by the request timeout), never dropped.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from time import perf_counter

import aiohttp

from load.records import RequestRecord
from load.request import Target, new_session, request_body, send_request
from load.workload import RequestSpec


@dataclass(frozen=True)
class LoadTally:
    sent: int
    completed: int
    failed: int
    errors_by_reason: dict[str, int]
    records: tuple[RequestRecord, ...]

    def first_success_since(self, t0: float) -> float | None:
        """perf_counter time of the first completion of a request sent at or after t0."""
        done = [r.finished for r in self.records if r.ok and r.sent is not None and r.sent >= t0]
        return min(done) if done else None  # type: ignore[type-var]


class SteadyLoad:
    def __init__(
        self, base_url: str, model: str, *, rate_per_s: float = 5.0, timeout_s: float = 30.0
    ) -> None:
        self._target = Target(
            base_url=base_url,
            model=model,
            api="completions",
            ignore_eos=True,
            headers={},
            extra_body={},
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=5.0),
            read_timeout_s=timeout_s,
        )
        self._body = request_body(
            self._target, RequestSpec(prompt="Say something.", output_len=4, input_len=3)
        )
        self._interval = 1.0 / rate_per_s
        self._records: list[RequestRecord] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name="steady-load", daemon=True
        )
        self._thread.start()
        return self

    async def _run(self) -> None:
        async with new_session() as session:
            tasks: list[asyncio.Task[None]] = []
            start = perf_counter()
            index = 0
            while not self._stop.is_set():
                scheduled = start + index * self._interval
                delay = scheduled - perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing of the open-loop schedule, not synchronisation
                record = RequestRecord(index=index, scheduled=scheduled)
                self._records.append(record)
                tasks.append(
                    asyncio.create_task(
                        send_request(
                            session, self._target, self._body, {"Content-Type": "application/json"}, record
                        )
                    )
                )
                index += 1
            await asyncio.gather(*tasks)

    def stop(self) -> LoadTally:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        records = tuple(self._records)
        failed = [r for r in records if not r.ok]
        reasons: dict[str, int] = {}
        for record in failed:
            reasons[record.error or "unknown"] = reasons.get(record.error or "unknown", 0) + 1
        return LoadTally(len(records), len(records) - len(failed), len(failed), reasons, records)
