"""After a real-engine run, nothing the benchmark wrote may say it was simulated.

A run that real vLLM served (its results record an engine other than the simulator's) and whose result files or
reports still say "sim" (a simulator time scale, "the suite's simulated engine", "simulated testbed") records
the wrong thing; the session then fails with one line naming the file and the offending text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reports.schema import Result

# "sim" as a word or a word's start: sim, [sim 0.2x], sim_time_scale, simulated, simulator, Simulation.
# Not "similar" or "simple" (those say nothing about what served the run).
SIM_TEXT = re.compile(r"\bsim(?:ulat\w*|_\w+)?\b", re.IGNORECASE)
# what the benchmark writes into the run's directory: result files and reports
OUTPUT_SUFFIXES = (".json", ".md", ".html")
SIM_ENGINE = "sim"


@dataclass(frozen=True)
class SimMention:
    path: Path
    line: int
    text: str  # the line around the match, trimmed

    def message(self) -> str:
        return (
            f"real-engine run, but {self.path}:{self.line} says {self.text!r}: a result or report of a run "
            "real vLLM served must not call it simulated (a suite bug: fixtures/served_by.py, reports/provenance.py)"
        )


def served_by_real_engine(results: Iterable[Result]) -> bool:
    """Every result records an engine, and none of them is the simulator."""
    engines = [r.run.engine for r in results]
    return bool(engines) and all(e is not None and e != SIM_ENGINE for e in engines)


def sim_mentions(text: str, path: Path) -> list[SimMention]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in SIM_TEXT.finditer(line):
            start, end = max(0, match.start() - 30), min(len(line), match.end() + 30)
            found.append(SimMention(path, number, line[start:end].strip()))
    return found


def check_outputs(paths: Sequence[Path]) -> list[SimMention]:
    """Every mention of "sim" in the given output files (result JSON, Markdown, HTML)."""
    found: list[SimMention] = []
    for path in paths:
        if path.suffix in OUTPUT_SUFFIXES and path.is_file():
            found += sim_mentions(path.read_text(errors="replace"), path)
    return found


def run_outputs(directory: Path) -> list[Path]:
    """The result files (benchmark-*.json) and reports (*.md, *.html) the benchmark wrote into its run directory."""
    reports = [p for p in directory.iterdir() if p.is_file() and p.suffix in (".md", ".html")]
    return sorted([*directory.glob("benchmark-*.json"), *reports])
