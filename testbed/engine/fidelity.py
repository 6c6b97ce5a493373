"""Shape comparison between a real vLLM and the simulator: what a client or a scraper would notice.

Pure functions: each takes what the real engine answered and what the simulator answered and returns a list
of differences, one short stable line each (fit for an allowlist). Values that legitimately differ between
two engines (generated text, ids, timestamps, token counts, latencies) are not compared; their types, the
key sets, the nesting, the SSE framing, status codes, content types and the fields that name things are:
- JSON (`json_differences`): the kind of every value (null, boolean, integer, float, string, list,
  object), the keys of every object, list lengths, the values of `EXACT_KEYS` (an error's type / param /
  code, `object`, `finish_reason`, `role`) and the prefix of `id` (`cmpl-`, `chatcmpl-`, ...);
- responses (`response_differences`): status, content type, then the body as JSON or as an SSE stream;
- SSE (`sse_differences`): framing (`data: ` prefix, frames separated by one blank line, a final
  `data: [DONE]`), the number of frames, then every frame as JSON (paired first with first, the rest
  from the end);
- Prometheus text (`metrics_differences`): the families, their TYPE and HELP lines, the sample suffixes
  (`_total`, `_created`, `_bucket`, `_count`, `_sum`), each suffix's label names, and the values of the
  labels that enumerate something (`VALUE_LABELS`: `le`, `finished_reason`, `reason`, ...);
- log lines (`line_shape_differences`): which wordings of a set of patterns occur, digits folded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EXACT_KEYS = frozenset({"object", "type", "param", "code", "finish_reason", "role"})
PREFIX_KEYS = frozenset({"id"})  # compared up to the last "-": "cmpl-", "chatcmpl-", "modelperm-"
VALUE_LABELS = frozenset(
    {"le", "quantile", "finished_reason", "reason", "source", "sleep_state", "generation"}
    | {"handler", "method", "status"}
)
SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gsum", "_gcount", "_info")


def kind(value: Any) -> str:
    """The JSON kind of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _id_prefix(value: str) -> str:
    return value.rsplit("-", 1)[0] + "-" if "-" in value else "(no prefix)"


def json_differences(
    real: Any,
    sim: Any,
    where: str = "$",
    *,
    exact_keys: Iterable[str] = EXACT_KEYS,
    prefix_keys: Iterable[str] = PREFIX_KEYS,
) -> list[str]:
    """Differences of shape between two decoded JSON values (see module docstring)."""
    exact, prefix = frozenset(exact_keys), frozenset(prefix_keys)
    out: list[str] = []

    def walk(r: Any, s: Any, path: str, key: str | None) -> None:
        kr, ks = kind(r), kind(s)
        if kr != ks:
            out.append(f"{path}: {kr} in real vLLM, {ks} in the simulator")
            return
        if key in exact and kr not in ("list", "object") and r != s:
            out.append(f"{path}: {r!r} in real vLLM, {s!r} in the simulator")
        elif key in prefix and kr == "string" and _id_prefix(r) != _id_prefix(s):
            out.append(f"{path}: prefix {_id_prefix(r)!r} in real vLLM, {_id_prefix(s)!r} in the simulator")
        if kr == "object":
            for k in r:
                if k not in s:
                    out.append(f"{path}.{k}: missing in the simulator")
            for k in s:
                if k not in r:
                    out.append(f"{path}.{k}: extra in the simulator (real vLLM has no such field)")
            for k in r:
                if k in s:
                    walk(r[k], s[k], f"{path}.{k}", k)
        elif kr == "list":
            if len(r) != len(s):
                out.append(f"{path}: {len(r)} items in real vLLM, {len(s)} in the simulator")
            for i, (ri, si) in enumerate(zip(r, s, strict=False)):
                walk(ri, si, f"{path}[{i}]", None)

    walk(real, sim, where, None)
    return out


# --- SSE --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SSEStream:
    """A stream split into frames: decoded JSON, the string "[DONE]", or the raw text of a bad frame."""

    frames: tuple[Any, ...]
    problems: tuple[str, ...]  # framing defects against `data: <json>\n\n ... data: [DONE]\n\n`


def parse_sse(raw: bytes) -> SSEStream:
    """Split an SSE body the way an OpenAI client reads it, and note every framing defect."""
    problems: list[str] = []
    text = raw.decode("utf-8", errors="replace")
    if "\r" in text:
        problems.append("frames use CR or CRLF line ends (expected LF only)")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n\n"):
        problems.append("the stream does not end with a blank line")
    if "\n\n\n" in text:
        problems.append("frames are separated by more than one blank line")
    frames: list[Any] = []
    chunks = [c for c in text.split("\n\n") if c.strip()]
    for i, chunk in enumerate(chunks):
        lines = chunk.split("\n")
        if len(lines) != 1:
            problems.append(f"frame {i} has {len(lines)} lines (expected one `data: ` line)")
        line = lines[0]
        if not line.startswith("data: "):
            shown = "data:" if line.startswith("data:") else line.split(":", 1)[0] + ":"
            problems.append(f"frame {i} starts with {shown!r} (expected 'data: ')")
            frames.append(line)
            continue
        payload = line[len("data: ") :]
        if payload == "[DONE]":
            frames.append("[DONE]")
            continue
        try:
            frames.append(json.loads(payload))
        except ValueError:
            problems.append(f"frame {i} is not JSON")
            frames.append(payload)
    if not frames or frames[-1] != "[DONE]":
        problems.append("the last frame is not `data: [DONE]`")
    if "[DONE]" in frames[:-1]:
        problems.append("`data: [DONE]` is not the last frame")
    return SSEStream(tuple(frames), tuple(problems))


def sse_differences(real_raw: bytes, sim_raw: bytes, where: str = "stream", **json_options: Any) -> list[str]:
    """Framing defects the simulator has and real vLLM has not, frame counts, then every frame's shape.

    Frames are paired first with first and the rest from the end (last with last, `[DONE]` with
    `[DONE]`), so one stream having fewer token frames still compares its opening, closing, usage and
    token frames with their counterparts; the difference in number is reported on its own."""
    real, sim = parse_sse(real_raw), parse_sse(sim_raw)
    out = [f"{where}: framing: {p} in the simulator" for p in sim.problems if p not in real.problems]
    out += [f"{where}: framing: {p} in real vLLM only" for p in real.problems if p not in sim.problems]
    nr, ns = len(real.frames), len(sim.frames)
    if nr != ns:
        out.append(
            f"{where}: {'fewer' if nr < ns else 'more'} frames in real vLLM ({nr}) than in the simulator ({ns})"
        )
    pairs = [(0, 0)] if nr and ns else []
    pairs += [(nr - k, ns - k) for k in range(1, min(nr, ns))]
    for i, j in sorted(pairs):
        out += json_differences(real.frames[i], sim.frames[j], f"{where}[{i}]", **json_options)
    return out


# --- whole responses --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


def response_differences(real: Response, sim: Response, where: str, **json_options: Any) -> list[str]:
    """Status, content type, then the body: SSE when the real one streams, else JSON (or empty)."""
    out = []
    if real.status != sim.status:
        out.append(f"{where}: status {real.status} in real vLLM, {sim.status} in the simulator")
    if real.content_type != sim.content_type:
        out.append(
            f"{where}: content type {real.content_type!r} in real vLLM, {sim.content_type!r} in the simulator"
        )
    if real.content_type.startswith("text/event-stream"):
        return out + sse_differences(real.body, sim.body, where, **json_options)
    if not real.body or not sim.body:
        if bool(real.body) != bool(sim.body):
            out.append(
                f"{where}: body {'non-empty' if real.body else 'empty'} in real vLLM, not in the simulator"
            )
        return out
    try:
        r, s = json.loads(real.body), json.loads(sim.body)
    except ValueError:
        if real.body != sim.body:
            out.append(f"{where}: the bodies differ and are not both JSON")
        return out
    return out + json_differences(r, s, where, **json_options)


# --- Prometheus text ------------------------------------------------------------------------------------


@dataclass
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    labels: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)  # sample suffix -> label name sets
    values: dict[str, set[str]] = field(default_factory=dict)  # enumerating label -> values seen


_SAMPLE = re.compile(r"^(?P<name>[^\s{]+)(?:\{(?P<labels>.*)\})?\s+\S+(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*(?P<key>[^=,\s]+)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*,?')


def _labels(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    return [(m["key"].strip('"'), m["value"]) for m in _LABEL.finditer(text)]


def parse_metrics(
    text: str, value_labels: Iterable[str] = VALUE_LABELS
) -> tuple[dict[str, Family], list[str]]:
    """Families by the name of their TYPE line, and lines that do not parse (or name no family)."""
    enum = frozenset(value_labels)
    families: dict[str, Family] = {}
    bad: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                fam = families.setdefault(parts[2], Family(parts[2]))
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    fam.type = rest
                else:
                    fam.help = rest
            continue
        m = _SAMPLE.match(line)
        if not m:
            bad.append(line)
            continue
        name = m["name"]
        owner, suffix = None, ""
        if name in families:
            owner = families[name]
        else:
            for sfx in SUFFIXES:
                if name.endswith(sfx) and name[: -len(sfx)] in families:
                    owner, suffix = families[name[: -len(sfx)]], sfx
                    break
        if owner is None:
            bad.append(line)
            continue
        pairs = _labels(m["labels"])
        owner.labels.setdefault(suffix, set()).add(tuple(sorted(k for k, _ in pairs)))
        for k, v in pairs:
            if k in enum:
                owner.values.setdefault(k, set()).add(v)
    return families, bad


def metrics_differences(
    real_text: str,
    sim_text: str,
    where: str = "/metrics",
    *,
    value_labels: Iterable[str] = VALUE_LABELS,
    compare_help: bool = True,
) -> list[str]:
    """Families missing or extra, TYPE / HELP lines, sample suffixes, label names, enumerating label values."""
    real, real_bad = parse_metrics(real_text, value_labels)
    sim, sim_bad = parse_metrics(sim_text, value_labels)
    out = [f"{where}: unparsable line in the simulator: {line[:120]}" for line in sim_bad]
    out += [f"{where}: unparsable line in real vLLM: {line[:120]}" for line in real_bad]
    for name in sorted(real.keys() - sim.keys()):
        out.append(f"{where}: family {name} ({real[name].type}) missing in the simulator")
    for name in sorted(sim.keys() - real.keys()):
        out.append(f"{where}: family {name} ({sim[name].type}) extra in the simulator")
    for name in sorted(real.keys() & sim.keys()):
        r, s = real[name], sim[name]
        if r.type != s.type:
            out.append(f"{where}: {name}: TYPE {r.type} in real vLLM, {s.type} in the simulator")
        if compare_help and r.help != s.help:
            out.append(
                f"{where}: {name}: HELP text differs: {r.help!r} in real vLLM, {s.help!r} in the simulator"
            )
        for sfx in sorted(r.labels.keys() | s.labels.keys()):
            sample = name + sfx
            if sfx not in s.labels:
                out.append(f"{where}: {sample}: no such samples in the simulator")
                continue
            if sfx not in r.labels:
                out.append(f"{where}: {sample}: samples in the simulator only")
                continue
            if r.labels[sfx] != s.labels[sfx]:
                out.append(
                    f"{where}: {sample}: label names {_names(r.labels[sfx])} in real vLLM, "
                    f"{_names(s.labels[sfx])} in the simulator"
                )
        for label in sorted(r.values.keys() | s.values.keys()):
            rv, sv = r.values.get(label, set()), s.values.get(label, set())
            if rv != sv:
                out.append(
                    f"{where}: {name}: {label} values {_values(rv)} in real vLLM, {_values(sv)} in the simulator"
                )
    return out


def _names(sets: set[tuple[str, ...]]) -> str:
    return " | ".join("{" + ",".join(t) + "}" for t in sorted(sets))


def _values(values: set[str]) -> str:
    def key(v: str) -> tuple[int, float, str]:
        try:
            return (0, float(v), v)
        except ValueError:
            return (1, 0.0, v)

    return "[" + ",".join(sorted(values, key=key)) + "]"


# --- log lines ------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def line_shapes(lines: Iterable[str], patterns: Mapping[str, re.Pattern[str]]) -> dict[str, set[str]]:
    """Per pattern, the distinct texts it matched (digits folded to N): how a log words what a check reads."""
    out: dict[str, set[str]] = {name: set() for name in patterns}
    for line in lines:
        for name, pattern in patterns.items():
            for m in pattern.finditer(line):
                out[name].add(_DIGITS.sub("N", m.group(0)))
    return out


def line_shape_differences(
    real: Mapping[str, set[str]], sim: Mapping[str, set[str]], where: str = "log"
) -> list[str]:
    out = []
    for name in sorted(real.keys() | sim.keys()):
        r, s = real.get(name, set()), sim.get(name, set())
        for text in sorted(r - s):
            out.append(f"{where}: {name}: {text!r} in real vLLM, not in the simulator")
        for text in sorted(s - r):
            out.append(f"{where}: {name}: {text!r} in the simulator, not in real vLLM")
    return out


def value_differences(real: Mapping[str, Any], sim: Mapping[str, Any], where: str) -> list[str]:
    """Plain equality of a few named conclusions (e.g. what a check concluded from each log)."""
    return [
        f"{where}: {k} = {real.get(k)!r} in real vLLM, {sim.get(k)!r} in the simulator"
        for k in sorted(real.keys() | sim.keys())
        if real.get(k) != sim.get(k)
    ]


# --- allowlist ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """A difference accepted on purpose: a regex over the difference line, and why it is accepted."""

    pattern: str
    why: str

    def matches(self, difference: str) -> bool:
        return re.search(self.pattern, difference) is not None


def split_allowed(
    differences: Iterable[str], allowlist: Iterable[Allowed]
) -> tuple[list[str], dict[Allowed, list[str]]]:
    """(differences no entry accepts, accepted differences by entry)."""
    entries = list(allowlist)
    left: list[str] = []
    used: dict[Allowed, list[str]] = {}
    for d in differences:
        hit = next((a for a in entries if a.matches(d)), None)
        if hit is None:
            left.append(d)
        else:
            used.setdefault(hit, []).append(d)
    return left, used
