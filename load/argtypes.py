"""Command-line value parsers shared by `python -m load` and the Locust runner: each raises
argparse.ArgumentTypeError with what was expected and what was given, which argparse turns into one line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from load.config import SLO_KEYS


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    value = nonneg_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def positive_number(text: str) -> float:
    """A number > 0; `inf` allowed (an open-loop rate of inf sends everything at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def nonneg_finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_finite_number(text: str) -> float:
    value = nonneg_finite_number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def slo_thresholds(text: str, number: Callable[[str], float]) -> dict[str, float]:
    """`ttft_ms=500,tpot_ms=50` into a dict; `number` parses each threshold (the callers differ on inf)."""
    slo: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in SLO_KEYS:
            raise argparse.ArgumentTypeError(f"expected {'=..,'.join(SLO_KEYS)}=.. (ms), got {part!r}")
        slo[key] = number(value)
    return slo
