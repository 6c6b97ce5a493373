"""Paces the simulated engine against the wall clock and hands tokens to the waiting HTTP streams.

Simulated time v maps to wall time `t0 + v * time_scale` (time_scale 1 = real time, 0.01 = 100x faster).
A request arriving at wall time w enters the engine at v = (w - t0) / time_scale (never before the
engine's own clock). With time_scale 0 pacing is off: batches complete back to back as fast as the CPU
goes, and the runner yields to the event loop every few milliseconds so streams flush many tokens per
write (the capacity path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from testbed.engine.scheduler import EngineCore, SimRequest

YIELD_EVERY_S = 0.002  # at time_scale 0, run batches for this long before letting streams write


class EngineRunner:
    def __init__(
        self, core: EngineCore, time_scale: float, on_token: Callable[[SimRequest, float], None]
    ) -> None:
        if time_scale < 0:
            raise ValueError(f"time scale must be >= 0, got {time_scale}")
        self.core = core
        self.scale = time_scale
        self._on_token = on_token
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._stopped = False
        self.failed: BaseException | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time() - self.core.now * self.scale
        self._task = loop.create_task(self._run(), name="engine-runner")

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def virtual_now(self) -> float:
        if self.scale > 0:
            return max(self.core.now, (asyncio.get_running_loop().time() - self._t0) / self.scale)
        return self.core.now

    def submit(self, req: SimRequest) -> None:
        self.core.add_request(req, self.virtual_now())
        self._wake.set()

    def abort(self, req: SimRequest) -> None:
        self.core.abort(req)

    async def _sleep(self, delay: float | None) -> None:
        self._wake.clear()
        if delay is None:
            await self._wake.wait()
            return
        handle = asyncio.get_running_loop().call_later(delay, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            handle.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        core = self.core
        on_token = self._on_token
        try:
            while not self._stopped:
                t_next = core.next_event_time()
                if t_next is None:
                    await self._sleep(None)
                    continue
                if self.scale > 0:
                    delay = self._t0 + t_next * self.scale - loop.time()
                    if delay > 0:
                        await self._sleep(delay)
                        continue
                    core.step(on_token)
                    await asyncio.sleep(0)
                    continue
                deadline = time.perf_counter() + YIELD_EVERY_S
                while core.step(on_token) and time.perf_counter() < deadline:
                    pass
                await asyncio.sleep(0)
        except Exception as exc:  # the engine died: the server reports it (EngineDeadError)
            self.failed = exc
            raise
