"""The benchmark's progress line during a level: at most every PROGRESS_EVERY_S seconds, rewritten in place on
a terminal (testbed/progress.py's status line), a plain line otherwise (a CI log); and one line when the
level is done."""

from __future__ import annotations

import time
from collections.abc import Callable

from load.level_runner import Progress
from testbed.progress import Printer

PROGRESS_EVERY_S = 10.0


class LevelProgress:
    def __init__(
        self, say: Callable[[str], None], name: str, index: int, clock: Callable[[], float] = time.monotonic
    ):
        self.say = say
        self.name = name
        self.index = index  # the level's place in the whole run (each level runs as a sweep of its own)
        self.clock = clock
        self.last: tuple[int, float] | None = None  # (level, when last shown)

    def __call__(self, p: Progress) -> None:
        done = p.completed + p.failed
        finished = done == p.sent and (p.planned is None or p.sent == p.planned) and p.sent > 0
        now = self.clock()
        planned = p.planned if p.planned is not None else "?"
        bound = f" of {p.duration_s:g} s" if p.duration_s is not None else ""
        text = (
            f"{self.name}: level {self.index + 1} ({p.description}): {p.sent}/{planned} sent, "
            f"{p.completed} completed, {p.failed} failed, {p.elapsed_s:.0f} s{bound}"
        )
        if finished:
            self.last = None
            return
        if self.last is not None and self.last[0] == p.level and now - self.last[1] < PROGRESS_EVERY_S:
            return
        first = self.last is None or self.last[0] != p.level
        self.last = (p.level, now)
        if first and p.sent == 0:
            self.last = (p.level, now - PROGRESS_EVERY_S)  # nothing to say yet: the first real tick shows
            return
        if isinstance(self.say, Printer) and self.say.tty:
            self.say.update(text)
        else:
            self.say(text)
