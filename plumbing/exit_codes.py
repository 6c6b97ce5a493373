"""The suite's exit codes (README.md, "Exit codes"), the same through `nox`, `python -m pytest` and every
`python -m` CLI, and the wrapper every CLI's `__main__` runs its `main` in.

pytest's own codes collide with these (its 2 is "interrupted", 3 "internal error", 4 "usage error", 5 "no
tests collected"); fixtures/exit_codes_plugin.py maps them into this table.
"""

from __future__ import annotations

import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType

OK = 0
FAILED = 1  # a check failed, the lint found errors, or the gate found a regression
USAGE = 2  # usage or input error: one line saying what was wrong
PREREQUISITE = (
    3  # the cluster cannot be reached, or a prerequisite is missing (on the cluster or this machine)
)
INTERNAL = 70  # an internal error of the suite (a bug: please report it); sysexits.h's EX_SOFTWARE
INTERRUPTED = 130  # Ctrl-C or SIGTERM, as shells report an interrupted command (128 + SIGINT)


def _terminated(signum: int, frame: FrameType | None) -> None:
    del frame
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def run_cli(main: Callable[[], int], prog: str) -> int:
    """main()'s exit code; Ctrl-C and SIGTERM give 130 with one line, an exception that escaped main (a bug of
    the suite, not bad input) its traceback and 70, never 1, which means "a check failed"."""
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return main()
    except KeyboardInterrupt as exc:
        print(f"{prog}: interrupted ({str(exc) or 'Ctrl-C'})", file=sys.stderr)
        return INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            f"{prog}: internal error of the suite (exit {INTERNAL}); please report it with the traceback above",
            file=sys.stderr,
        )
        return INTERNAL
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)
