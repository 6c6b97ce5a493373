"""Progress lines a person can follow, on a terminal and in a CI log alike.

A `Printer` is a progress callback (`printer("message")` writes a lasting line, with the time since the run
began) that also takes a transient status (`printer.update("message")`): on a terminal the status line is
rewritten in place (`\\r`) until the next lasting line replaces it; without a terminal (a CI log) there is no
`\\r` rewriting, and a status is written as an ordinary line at most every STATUS_EVERY_S seconds, so a log
shows the same lines, less often. Code that reports progress takes any `Callable[[str], None]`; `update()`
below sends a status to a Printer and ignores it for other callbacks. No pytest here: the testbed uses it
directly, and fixtures/pytest_progress.py routes it around pytest's output capture.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable

STATUS_EVERY_S = 15.0


def elapsed(seconds: float) -> str:
    """12.3s below a minute, 4m05s above."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


class Printer:
    """Lasting lines and one transient status line; `write` takes raw text (it must flush)."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        tty: bool,
        label: str,
        started: float | None = None,
        width: Callable[[], int] | None = None,
    ) -> None:
        self._write = write
        self.tty = tty
        self.label = label
        self.started = time.monotonic() if started is None else started
        self._width = width or (lambda: shutil.get_terminal_size((100, 24)).columns)
        self._status_shown = False
        self._last_status_line = float("-inf")
        self._lock = threading.Lock()  # the load generator and waits may report from threads

    def _prefix(self) -> str:
        return f"[{self.label} {elapsed(time.monotonic() - self.started):>6}]"

    def __call__(self, message: str) -> None:
        with self._lock:
            self._write(self._clear() + f"{self._prefix()} {message}\n")

    def update(self, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self.tty:
                text = f"{self._prefix()} {message}"[: max(20, self._width() - 1)]
                self._write(f"\r{text}\x1b[K")
                self._status_shown = True
            elif now - self._last_status_line >= STATUS_EVERY_S:
                self._write(f"{self._prefix()} {message}\n")
                self._last_status_line = now

    def clear(self) -> None:
        """Remove the status line (before other output, e.g. a test's result, is written)."""
        with self._lock:
            if text := self._clear():
                self._write(text)

    def _clear(self) -> str:
        if not self._status_shown:
            return ""
        self._status_shown = False
        return "\r\x1b[K"


def update(progress: Callable[[str], None], message: str) -> None:
    """A transient status: shown by a Printer, ignored by a plain callback (it gets the lasting lines)."""
    status = getattr(progress, "update", None)
    if callable(status):
        status(message)


def stderr_printer(label: str = "testbed") -> Printer:
    """For the command line (`python -m testbed`): progress on stderr, animated only on a terminal."""

    def write(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    return Printer(write, tty=sys.stderr.isatty(), label=label)
