"""Where the simulated pods' log lines go: the engine's stdout (the leader's container output) and, when
asked, files in the CRI log format the kubelet writes (`<RFC3339Nano> stdout F <line>`), one for the
leader and one per worker pod, so `kubectl logs` through KWOK shows them as a real node would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO


def cri_timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC, as the kubelet's CRI log files have it."""
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class LogSink:
    """Pod 0 is the leader (stdout + leader file); pod k >= 1 goes only to worker file k."""

    def __init__(
        self,
        *,
        leader_file: Path | None,
        worker_files: list[Path],
        stdout: TextIO | None = None,
        echo: bool = True,
    ) -> None:
        self._stdout = stdout if stdout is not None else sys.stdout
        self._echo = echo
        self._files: dict[int, TextIO] = {}
        if leader_file is not None:
            self._files[0] = _open(leader_file)
        for k, path in enumerate(worker_files, start=1):
            self._files[k] = _open(path)

    def write(self, pod: int, line: str) -> None:
        if pod == 0 and self._echo:
            self._stdout.write(line + "\n")
            self._stdout.flush()
        f = self._files.get(pod)
        if f is not None:
            stamp = cri_timestamp()
            f.write(f"{stamp} stdout F {line}\n")
            f.flush()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def _open(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")
