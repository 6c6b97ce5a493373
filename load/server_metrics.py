"""vLLM's Prometheus ``/metrics``, scraped before and after a level, reduced to what changed.

Keys of the delta (the schema's ``server_metrics_delta``), each summed over all label sets:
- a counter: its increase, under the sample name (``vllm:generation_tokens_total``);
- a histogram or summary: the increase of ``<name>_sum`` and ``<name>_count`` (buckets are left out);
- a gauge (or an untyped sample): its value after the level (``vllm:num_requests_running``).
Only names starting with ``prefix`` (default ``vllm:``) are kept. A counter that went down (the server
restarted during the level) is reported as its value after, the increase since the restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp

_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


@dataclass(frozen=True)
class Snapshot:
    values: dict[str, float]  # sample name -> value summed over label sets
    kinds: dict[str, str]  # sample name -> counter | histogram | summary | gauge | untyped


def parse_prometheus_text(text: str, prefix: str = "vllm:") -> Snapshot:
    families: dict[str, str] = {}
    values: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) == 4 and parts[1] == "TYPE":
                families[parts[2]] = parts[3].strip()
            continue
        name, value = _sample(line)
        if name is None or not name.startswith(prefix):
            continue
        kind = _kind(name, families)
        if kind is None:
            continue
        values[name] = values.get(name, 0.0) + value
        kinds[name] = kind
    return Snapshot(values, kinds)


def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in after.values.items():
        if after.kinds[name] == "gauge" or name not in before.values:
            out[name] = value
        else:
            change = value - before.values[name]
            out[name] = value if change < 0 else change
    return dict(sorted(out.items()))


async def scrape(
    session: aiohttp.ClientSession, base_url: str, timeout_s: float, prefix: str = "vllm:"
) -> Snapshot | None:
    """GET <base>/metrics; None when the server has none (so the level's delta stays null)."""
    try:
        async with session.get(
            base_url + "/metrics", timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            if response.status != 200:
                return None
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
        return None
    return parse_prometheus_text(text, prefix)


def _sample(line: str) -> tuple[str | None, float]:
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name = line[:brace]
        end = _labels_end(line, brace)
        if end is None:
            return None, math.nan
        rest = line[end + 1 :].split()
    else:
        name, _, tail = line.partition(" ")
        rest = tail.split()
    if not rest:
        return None, math.nan
    try:
        value = float(rest[0])
    except ValueError:
        return None, math.nan
    return (name, value) if math.isfinite(value) else (None, math.nan)


def _labels_end(line: str, start: int) -> int | None:
    quoted = escaped = False
    for i in range(start + 1, len(line)):
        ch = line[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "}" and not quoted:
            return i
    return None


def _kind(name: str, families: dict[str, str]) -> str | None:
    """The family type of a sample, or None for samples left out (buckets, quantiles, _created)."""
    if name.endswith("_created"):
        return None
    base, kind = name, families.get(name)
    if kind is None:
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in families:
                base = name[: -len(suffix)]
                kind = families[base]
                break
        else:
            kind = "untyped"
    if kind in ("histogram", "summary", "gaugehistogram"):
        return kind if base != name and name.endswith(("_sum", "_count")) else None
    return kind
