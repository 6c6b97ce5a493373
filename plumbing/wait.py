"""The one polling primitive of the suite.

A condition is a function that either returns a value (done) or raises `NotYet` with what it saw. `wait_for`
calls it until it is done or the deadline passes; a timeout raises `WaitTimeout` whose message names what
was awaited, for how long, and the last observation, because "'Timeout' is not a useful error message"
(Kubernetes SIG Testing guide). Observations that change are reported to `progress`, so a long wait shows
what it is waiting on. The interval is a poll period, not synchronisation: the condition decides.

Conditions used in more than one place are named here: `http_ok` (a URL answers 200) and `still_running` (a
guard that ends a wait at once, with `Exited`, when the process it waits on has died).
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a condition that is not met yet; its message is what the condition saw."""


class WaitTimeout(TimeoutError):
    def __init__(self, what: str, timeout: float, last_seen: str) -> None:
        super().__init__(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last_seen}")
        self.what = what
        self.last_seen = last_seen


class Exited(RuntimeError):
    """A process a wait depends on has exited: waiting longer cannot help, so the wait ends at once."""


def wait_for(
    condition: Callable[[], T],
    *,
    what: str,
    timeout: float,
    interval: float = 0.25,
    progress: Callable[[str], None] | None = None,
) -> T:
    """Poll `condition` until it returns without raising NotYet; return its value."""
    deadline = time.monotonic() + timeout
    last_seen = "nothing yet (the condition was never evaluated)"
    while True:
        try:
            return condition()
        except NotYet as exc:
            seen = str(exc) or "not ready"
            if progress is not None and seen != last_seen:
                progress(f"waiting for {what}: {seen}")
            last_seen = seen
        if time.monotonic() >= deadline:
            raise WaitTimeout(what, timeout, last_seen)
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def still_running(proc: subprocess.Popen[Any], what: str, said: Callable[[], str] | None = None) -> None:
    """Raise `Exited` ("<what> exited <code>: <said()>", e.g. its log's tail) if `proc` has exited; a condition
    calls it first, so a process that died is reported at once rather than waited on until the timeout."""
    if proc.poll() is None:
        return
    detail = said() if said is not None else ""
    raise Exited(f"{what} exited {proc.returncode}" + (f": {detail}" if detail else ""))


def http_ok(url: str, *, timeout: float = 5.0) -> None:
    """Done when GET `url` answers 200; NotYet with what came back otherwise (refused, an HTTP error status)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status == 200:
                return
            status = resp.status
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise NotYet(str(exc)) from None
    raise NotYet(f"HTTP {status}, not 200")
