"""Progress on stderr: a bar redrawn in place on a terminal, a line every few seconds otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from load.level_runner import Progress

_BAR = 24
_LOG_EVERY_S = 10.0


class StderrProgress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._level = 0
        self._last_logged = -_LOG_EVERY_S
        self._open_line = False

    def __call__(self, p: Progress) -> None:
        new_level = p.level != self._level
        if new_level:
            self._end_line()
            self._level = p.level
            self._last_logged = -_LOG_EVERY_S
        done = p.completed + p.failed
        text = (
            f"level {p.level}/{p.levels} ({p.description}): {p.sent}/{p.planned if p.planned is not None else '?'} sent, "
            f"{p.completed} completed, {p.failed} failed, {p.elapsed_s:.1f} s"
        )
        if self.tty:
            if p.planned:
                filled = round(_BAR * done / p.planned)
            elif p.duration_s:
                filled = min(_BAR, round(_BAR * p.elapsed_s / p.duration_s))
            else:
                filled = _BAR
            self.stream.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {text}\x1b[K")
            self._open_line = True
        elif new_level or p.elapsed_s - self._last_logged >= _LOG_EVERY_S or done == p.planned:
            self.stream.write(text + "\n")
            self._last_logged = p.elapsed_s
        self.stream.flush()

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False
