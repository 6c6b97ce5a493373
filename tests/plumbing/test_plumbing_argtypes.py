"""The shared command-line value parsers: what each accepts, and the one line it says about what it refuses.

The CLIs' own tests (tests/load/test_load_cli.py, tests/load/test_locust_cli.py,
tests/testbed/engine/test_engine_cli.py) check that these lines reach the user as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

import pytest

from plumbing.argtypes import (
    fraction,
    key_numbers,
    nonneg_finite_number,
    nonneg_int,
    port,
    positive_finite_number,
    positive_int,
    positive_number,
)


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (nonneg_int, "0", 0),
        (nonneg_int, "7", 7),
        (positive_int, "1", 1),
        (positive_int, " 12 ", 12),
        (port, "0", 0),
        (port, "65535", 65535),
        (positive_number, "0.5", 0.5),
        (positive_number, "inf", math.inf),
        (nonneg_finite_number, "0", 0.0),
        (nonneg_finite_number, "2.5", 2.5),
        (positive_finite_number, "1e-3", 0.001),
        (fraction, "1", 1.0),
        (fraction, "0.9", 0.9),
    ],
)
def test_a_good_value_is_parsed(parse: Callable[[str], Any], text: str, value: object) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (nonneg_int, "x", "expected a whole number, got 'x'"),
        (nonneg_int, "1.5", "expected a whole number, got '1.5'"),
        (nonneg_int, "-1", "expected a whole number >= 0, got -1"),
        (positive_int, "0", "expected a whole number >= 1, got 0"),
        (positive_int, "-3", "expected a whole number >= 1, got -3"),
        (positive_int, "many", "expected a whole number, got 'many'"),
        (port, "http", "expected a TCP port number, got 'http'"),
        (port, "65536", "expected a TCP port 0..65535, got 65536"),
        (port, "-1", "expected a TCP port 0..65535, got -1"),
        (positive_number, "fast", "expected a number, got 'fast'"),
        (positive_number, "0", "expected a number > 0, got 0"),
        (positive_number, "nan", "expected a number > 0, got nan"),
        (nonneg_finite_number, "fast", "expected a number, got 'fast'"),
        (nonneg_finite_number, "inf", "expected a finite number >= 0, got inf"),
        (nonneg_finite_number, "-0.1", "expected a finite number >= 0, got -0.1"),
        (positive_finite_number, "0", "expected a number > 0, got 0"),
        (positive_finite_number, "inf", "expected a finite number >= 0, got inf"),
        (fraction, "1.5", "expected a fraction in (0, 1], got 1.5"),
        (fraction, "0", "expected a fraction in (0, 1], got 0"),
        (fraction, "most", "expected a number, got 'most'"),
    ],
)
def test_a_bad_value_is_refused_with_what_was_expected_and_what_was_given(
    parse: Callable[[str], Any], text: str, message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse(text)
    assert str(refused.value) == message


SLO_KEYS = ("ttft_ms", "tpot_ms", "e2el_ms")


def test_key_numbers_reads_each_known_key_with_the_callers_number_parser() -> None:
    assert key_numbers("ttft_ms=500, tpot_ms=50", SLO_KEYS, positive_number, "ms") == {
        "ttft_ms": 500.0,
        "tpot_ms": 50.0,
    }
    assert key_numbers("e2el_ms=inf", SLO_KEYS, positive_number, "ms") == {"e2el_ms": math.inf}


@pytest.mark.parametrize(
    ("text", "number", "message"),
    [
        ("ttft=5", positive_number, "expected ttft_ms=..,tpot_ms=..,e2el_ms=.. (ms), got 'ttft=5'"),
        ("ttft_ms", positive_number, "expected ttft_ms=..,tpot_ms=..,e2el_ms=.. (ms), got 'ttft_ms'"),
        ("ttft_ms=5,", positive_number, "expected ttft_ms=..,tpot_ms=..,e2el_ms=.. (ms), got ''"),
        ("ttft_ms=0", positive_number, "expected a number > 0, got 0"),
        ("ttft_ms=inf", positive_finite_number, "expected a finite number >= 0, got inf"),
    ],
)
def test_key_numbers_refuses_an_unknown_key_or_a_bad_number(
    text: str, number: Callable[[str], float], message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        key_numbers(text, SLO_KEYS, number, "ms")
    assert str(refused.value) == message


def test_a_refusal_reaches_the_user_as_one_argparse_line() -> None:
    parser = argparse.ArgumentParser(prog="prog", exit_on_error=False)
    parser.add_argument("--users", type=positive_int)
    with pytest.raises(argparse.ArgumentError) as refused:
        parser.parse_args(["--users", "0"])
    assert str(refused.value) == "argument --users: expected a whole number >= 1, got 0"
