"""A steady trickle of short streaming completions through the Service while a fault is injected.

Open loop at a fixed rate, so the count of requests during an outage does not depend on how fast they fail;
each request is the load generator's own (load.request.send_request), so a failure is a record with a reason.
Every request sent is accounted as completed or failed when the load stops; requests still in flight at
stop are awaited (bounded by the request timeout), never dropped. Used as a context manager, an exception
(Ctrl-C's KeyboardInterrupt above all) cancels the requests in flight instead of awaiting them, and goes on.

Each request's pod is read from the loopback balancer's response header (load/balancer_api.py ENDPOINT_HEADER,
`x-lws-vllm-endpoint`), which the request split (checks/request_split.py) places against the Service's timeline.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from time import perf_counter
from types import TracebackType

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
    endpoints: dict[int, str] = field(default_factory=dict)  # request index -> the pod that carried it

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
        self._abort = False
        self._thread: threading.Thread | None = None
        self.tally: LoadTally | None = None  # set when the load stops

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the load; on an exception, without awaiting the requests in flight (they are cancelled)."""
        self._abort = kind is not None
        self.stop()

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
            if self._abort:
                for task in tasks:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=self._abort)

    def stop(self) -> LoadTally:
        if self.tally is not None:
            return self.tally
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        records = tuple(self._records)
        failed = [r for r in records if not r.ok]
        reasons: dict[str, int] = {}
        for record in failed:
            reasons[record.error or "unknown"] = reasons.get(record.error or "unknown", 0) + 1
        self.tally = LoadTally(
            len(records), len(records) - len(failed), len(failed), reasons, records, _endpoints(records)
        )
        return self.tally


def _endpoints(records: tuple[RequestRecord, ...]) -> dict[int, str]:
    """Request index -> the pod that carried it (the balancer's header; absent through a plain port-forward)."""
    return {r.index: r.endpoint for r in records if r.endpoint}
