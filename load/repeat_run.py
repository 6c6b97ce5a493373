"""``--repeats N``: the whole sweep run N times in a row, folded into one result with intervals.

Sweep after sweep (level 1, 2, ... then level 1 again) rather than each level N times back to back, so a
drift of the server over time spreads over every level instead of landing on one. Repeat r > 0 seeds its
prompts and arrivals with (seed, level, kind, r): new prompts each time, so no repeat is served from the
prefix cache an earlier one filled. The folding and the intervals are reports/repeats.py's.
"""

from __future__ import annotations

import asyncio
import dataclasses

from load.config import SweepConfig
from load.level_runner import Progress, ProgressSink
from load.runner import SweepRun, run_sweep
from reports.repeats import fold_repeats
from reports.schema import Result


@dataclasses.dataclass
class RepeatedRun:
    result: Result  # the folded result (the single run's own when repeats == 1)
    runs: list[SweepRun]
    interrupted: bool


async def run_repeats(
    config: SweepConfig,
    repeats: int,
    *,
    progress: ProgressSink | None = None,
    stop: asyncio.Event | None = None,
) -> RepeatedRun:
    runs: list[SweepRun] = []
    for r in range(repeats):
        sink = progress if repeats == 1 or progress is None else _tagged(progress, r, repeats)
        run = await run_sweep(config.model_copy(update={"repeat": r}), progress=sink, stop=stop)
        runs.append(run)
        if run.interrupted or (stop is not None and stop.is_set()):
            return RepeatedRun(fold(runs), runs, True)
    return RepeatedRun(fold(runs), runs, False)


def _tagged(progress: ProgressSink, r: int, repeats: int) -> ProgressSink:
    def sink(p: Progress) -> None:
        progress(dataclasses.replace(p, description=f"{p.description}; repeat {r + 1}/{repeats}"))

    return sink


def fold(runs: list[SweepRun]) -> Result:
    """Every level's repeats folded (a level an interrupted last repeat did not reach has fewer)."""
    if len(runs) == 1:
        return runs[0].result
    first = runs[0].result
    levels = [
        fold_repeats([run.result.results[n] for run in runs if n < len(run.result.results)])
        for n in range(len(first.results))
    ]
    run_meta = first.run.model_copy(update={"finished_at": runs[-1].result.run.finished_at})
    return first.model_copy(update={"run": run_meta, "results": levels})
