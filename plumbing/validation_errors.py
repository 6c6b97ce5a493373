"""Pydantic's ValidationError as the one line a user reads (README, exit codes: a usage error is one line).

The typed settings and load configs carry their rules in validators that raise ``ValueError`` with the
message a user should read (what was wrong, what to do); pydantic wraps it with the field's location and a
"Value error, " prefix, and lists every problem on lines of their own. ``one_line`` gives back the first
problem as its validator worded it, or, for a type pydantic itself rejected, ``field: what pydantic says,
got value``.
"""

from __future__ import annotations

from pydantic import ValidationError


def one_line(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, ValueError):  # a rule of ours: its own words
        text = str(raised)
    else:
        where = ".".join(str(part) for part in first["loc"]) or error.title
        got = "" if first["type"] == "missing" else f", got {first['input']!r}"
        text = f"{where}: {first['msg']}{got}"
    return " ".join(text.splitlines())
