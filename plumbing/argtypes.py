"""Command-line value parsers for argparse's ``type=``, shared by every CLI of the suite.

Each raises ``argparse.ArgumentTypeError`` saying what was expected and what was given; argparse turns that
into one line (``PROG: error: argument --flag: expected ..., got ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def nonneg_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: the system picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a TCP port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535, got {value}")
    return value


def positive_number(text: str) -> float:
    """A number > 0; `inf` allowed (an open-loop rate of inf sends everything at once)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def nonneg_finite_number(text: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_finite_number(text: str) -> float:
    value = nonneg_finite_number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A share in (0, 1], such as vLLM's --gpu-memory-utilization."""
    value = nonneg_finite_number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text}")
    return value


def key_numbers(
    text: str, keys: Sequence[str], number: Callable[[str], float], unit: str
) -> dict[str, float]:
    """`a=1,b=2` into {"a": 1.0, "b": 2.0}: each key one of ``keys``, each value parsed by ``number``."""
    found: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in keys:
            raise argparse.ArgumentTypeError(f"expected {'=..,'.join(keys)}=.. ({unit}), got {part!r}")
        found[key] = number(value)
    return found
