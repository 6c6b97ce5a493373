"""Levels where the client was the bottleneck (``metrics.client.verdict == "invalid"``, load/client_check.py).

Their latencies are partly the client's own queue and their throughput is what the client could send, not
what the server could serve. ``compare`` and ``gate`` refuse them (exit 2, naming file, level and reason)
unless told to allow them; then every place they appear says INVALID.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reports.levels import level_labels
from reports.schema import LevelResult, Result

INVALID_TAG = "INVALID"
INVALID_NOTE = "INVALID: the client was the bottleneck at this level (load/README.md, 'Client saturation')"


class InvalidLevelsError(ValueError):
    """Results holding levels where the client was the bottleneck, given without allow_invalid."""


@dataclass(frozen=True)
class InvalidLevel:
    source: str  # the file (or run name)
    level: str  # the level's label, e.g. '20000 req/s'
    reasons: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.source} level {self.level}: {'; '.join(self.reasons) or 'client check invalid'}"


def invalid_levels(sources: Sequence[str], results: Sequence[Result]) -> list[InvalidLevel]:
    out = []
    for source, result in zip(sources, results, strict=True):
        labels = level_labels([lv.load for lv in result.results])
        for label, level in zip(labels, result.results, strict=True):
            if level.invalid:
                assert level.metrics.client is not None
                out.append(InvalidLevel(source, label, tuple(level.metrics.client.reasons)))
    return out


def check_valid(sources: Sequence[str], results: Sequence[Result], allow_invalid: bool) -> list[InvalidLevel]:
    """The invalid levels; raises InvalidLevelsError naming the first (and counting the rest) unless
    ``allow_invalid``."""
    found = invalid_levels(sources, results)
    if found and not allow_invalid:
        more = f" (and {len(found) - 1} more invalid level(s))" if len(found) > 1 else ""
        raise InvalidLevelsError(
            f"client-bound level, not a measurement of the server: {found[0].describe()}{more}; rerun it with "
            "more client (fewer streams or a lower rate per process, more processes), or pass --allow-invalid "
            "to use it anyway"
        )
    return found


def invalid_label(label: str, level: LevelResult) -> str:
    """A level's label with the INVALID tag when its client check failed."""
    return f"{label} [{INVALID_TAG}]" if level.invalid else label


def allowed_invalid_note(found: Sequence[InvalidLevel]) -> str:
    return (
        f"Invalid levels allowed (--allow-invalid): {len(found)} level(s) where the client was the bottleneck "
        "are included and tagged [INVALID]: " + "; ".join(f.describe() for f in found)
    )


SERVER_VIEW_TAG = "SERVER VIEW"


def level_server_problems(level: LevelResult) -> list[str]:
    """What the server's own view of the level (and of each of its repeats) shows cannot be: a client TTFT
    below the server's bound, counts that disagree (load/server_view.py). Empty when none or not scraped."""
    views = [level.metrics.server_view, *(m.server_view for m in level.repeats)]
    found: list[str] = []
    for view in views:
        found += [p for p in (view.problems if view is not None else []) if p not in found]
    return found


def check_server_view(
    sources: Sequence[str], results: Sequence[Result], allow_invalid: bool
) -> list[InvalidLevel]:
    """The levels whose server view found problems; raises InvalidLevelsError naming the first (and counting
    the rest) unless ``allow_invalid``. The client's clock or counts shown impossible by the server are no
    more a measurement of the server than a client-bound level."""
    found = []
    for source, result in zip(sources, results, strict=True):
        labels = level_labels([lv.load for lv in result.results])
        for label, level in zip(labels, result.results, strict=True):
            if problems := level_server_problems(level):
                found.append(InvalidLevel(source, label, tuple(problems)))
    if found and not allow_invalid:
        more = f" (and {len(found) - 1} more such level(s))" if len(found) > 1 else ""
        raise InvalidLevelsError(
            f"the server's own view contradicts the client's figures: {found[0].describe()}{more}; find why "
            "(load/README.md, '`server_view`') and rerun, or pass --allow-invalid to use it anyway"
        )
    return found


def allowed_server_view_note(found: Sequence[InvalidLevel]) -> str:
    return (
        f"Levels with server-view problems allowed (--allow-invalid): {len(found)} level(s) where the server's "
        "own view contradicts the client's figures are included and tagged "
        f"[{SERVER_VIEW_TAG}]: " + "; ".join(f.describe() for f in found)
    )
