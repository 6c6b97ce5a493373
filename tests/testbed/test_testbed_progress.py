"""Progress lines: a status line rewritten in place on a terminal, plain throttled lines in a CI log."""

from __future__ import annotations

import pytest

from testbed import progress
from testbed.progress import Printer, elapsed


def printer(tty: bool) -> tuple[Printer, list[str]]:
    out: list[str] = []
    return Printer(out.append, tty=tty, label="t", width=lambda: 80), out


def test_a_log_gets_no_carriage_returns_and_at_most_one_status_line_per_period() -> None:
    log, out = printer(tty=False)
    log("building")
    for n in range(50):
        log.update(f"compiling package {n}")
    log("done")
    text = "".join(out)
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["building", "compiling package 0", "done"]


def test_a_terminal_rewrites_the_status_line_and_a_lasting_line_replaces_it() -> None:
    term, out = printer(tty=True)
    term.update("compiling a")
    term.update("compiling b")
    term("step done")
    assert out[0].startswith("\r") and out[1].startswith("\r") and "compiling b" in out[1]
    assert out[2].startswith("\r\x1b[K") and out[2].endswith("step done\n"), "the status must be erased first"
    term.clear()
    assert len(out) == 3, "nothing to clear once a lasting line has replaced the status"


def test_a_status_line_never_wraps_on_a_narrow_terminal() -> None:
    term, out = printer(tty=True)
    term.update("x" * 500)
    assert len(out[0].removeprefix("\r").removesuffix("\x1b[K")) <= 79


def test_update_reaches_a_printer_and_skips_a_plain_callback() -> None:
    seen: list[str] = []
    progress.update(seen.append, "status")
    assert seen == []
    term, out = printer(tty=True)
    progress.update(term, "status")
    assert "status" in out[0]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.04, "0.0s"), (12.34, "12.3s"), (65, "1m05s"), (725, "12m05s")]
)
def test_elapsed_reads_as_a_person_says_it(seconds: float, shown: str) -> None:
    assert elapsed(seconds) == shown
