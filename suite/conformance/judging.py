"""Judge one observation with several checks: each check returns its problems ([] when conformant), and a test
fails with every failing check's MUST (its docstring) and problems, so one run shows all that is wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def assert_conformant(observed: T, *checks: Callable[[T], list[str]]) -> None:
    failed = [(check, problems) for check in checks if (problems := check(observed))]
    assert not failed, "\n".join(f"{c.__doc__}\n" + "\n".join(f"  - {p}" for p in ps) for c, ps in failed)
