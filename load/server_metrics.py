"""vLLM's Prometheus ``/metrics``, scraped before and after a level, reduced to what changed.

Keys of the delta (the schema's ``server_metrics_delta``), each summed over all label sets:
- a counter: its increase, under the sample name (``vllm:generation_tokens_total``);
- a histogram or summary: the increase of ``<name>_sum`` and ``<name>_count`` (buckets are left out);
- a gauge (or an untyped sample): its value after the level (``vllm:num_requests_running``).
Only names starting with ``prefix`` (default ``vllm:``) are kept. A counter that went down (the server
restarted during the level) is reported as its value after, the increase since the restart.

Reconciling the client's counts with the server's (``reconcile``): ``sent == completed + failed`` holds by
construction on the client side, so it proves nothing; the server's own counters, scraped before and after
(``scrape_sync`` or ``scrape``, then ``server_delta``), are an independent count of the same requests:

    before = scrape_sync(url)
    ...  # the run; nothing else may send requests to this server meanwhile
    after = scrape_sync(url, settle_s=2.0)  # the last request's counters may land just after its response
    problems = reconcile(ClientCounts.from_records(records), server_delta(before, after))
    assert not problems, problems

Scrape one server: through a Service with several replicas, each scrape may reach another pod. A level of
``python -m load`` already holds the delta (``LevelMetrics.server_metrics_delta``):
``reconcile(ClientCounts.from_level(m), ServerDelta.from_mapping(m.server_metrics_delta))``, but that delta
cannot show a restart during the level (a counter that went down is reported as its value after).
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from load.server_histograms import Buckets, parse_buckets, parse_request_spans

if TYPE_CHECKING:
    from load.records import RequestRecord
    from reports.schema import LevelMetrics

_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


@dataclass(frozen=True)
class Snapshot:
    values: dict[str, float]  # sample name -> value summed over label sets
    kinds: dict[str, str]  # sample name -> counter | histogram | summary | gauge | untyped
    # latency histogram family -> bucket edge -> cumulative count (load/server_histograms.py)
    buckets: dict[str, Buckets] = field(default_factory=dict)
    # (seconds, count) of the HTTP request durations of the generate endpoints (load/server_histograms.py)
    request_spans: tuple[float, float] | None = None


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
    return Snapshot(values, kinds, parse_buckets(text), parse_request_spans(text))


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


# reconciling client and server counts ----------------------------------------------------------------------
REQUEST_SUCCESS = "vllm:request_success_total"  # family vllm:request_success, summed over finished_reason
GENERATION_TOKENS = "vllm:generation_tokens_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
RECONCILED = (REQUEST_SUCCESS, GENERATION_TOKENS, PROMPT_TOKENS)


def scrape_sync(
    base_url: str,
    timeout_s: float = 10.0,
    prefix: str = "vllm:",
    *,
    settle_s: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> Snapshot | None:
    """GET <base>/metrics without an event loop (a test, a thread); None when the server has none.

    With ``settle_s`` > 0 it scrapes again every 0.1 s until the reconciled counters read the same twice in a
    row, for at most ``settle_s``: vLLM may count a finished request just after sending its last chunk.
    """
    deadline = time.monotonic() + settle_s
    snapshot = _get_metrics(base_url, timeout_s, prefix, headers)
    while snapshot is not None and time.monotonic() < deadline:
        time.sleep(0.1)
        again = _get_metrics(base_url, timeout_s, prefix, headers)
        if again is None:
            return snapshot
        settled = all(again.values.get(n) == snapshot.values.get(n) for n in RECONCILED)
        snapshot = again
        if settled:
            break
    return snapshot


def _get_metrics(
    base_url: str, timeout_s: float, prefix: str, headers: Mapping[str, str] | None
) -> Snapshot | None:
    request = urllib.request.Request(base_url.rstrip("/") + "/metrics", headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, UnicodeDecodeError):  # HTTPError (404 etc.) is a URLError
        return None
    return parse_prometheus_text(text, prefix)


@dataclass(frozen=True)
class ClientCounts:
    """What the client saw: requests sent, completed and failed, and the usage of the completed ones."""

    sent: int
    completed: int
    failed: int
    output_tokens: int | None = None  # sum of usage.completion_tokens over completed requests
    prompt_tokens: int | None = None  # sum of usage.prompt_tokens over completed requests

    @classmethod
    def from_records(cls, records: Iterable[RequestRecord]) -> ClientCounts:
        """From the load generator's request records (``LoadTally.records``, ``LevelRun.records``)."""
        sent = [r for r in records if r.sent is not None]
        done = [r for r in sent if r.ok]
        output = [r.output_tokens for r in done]
        prompt = [r.prompt_tokens for r in done]
        return cls(
            sent=len(sent),
            completed=len(done),
            failed=len(sent) - len(done),
            output_tokens=None if any(v is None for v in output) else sum(v or 0 for v in output),
            prompt_tokens=None if any(v is None for v in prompt) else sum(v or 0 for v in prompt),
        )

    @classmethod
    def from_level(cls, metrics: LevelMetrics) -> ClientCounts:
        """From a level of a result file (its token totals are None when nothing completed)."""
        counts = metrics.requests
        return cls(
            sent=counts.sent,
            completed=counts.completed,
            failed=counts.failed,
            output_tokens=metrics.output_tokens if counts.completed else 0,
            prompt_tokens=metrics.input_tokens if counts.completed else 0,
        )


@dataclass(frozen=True)
class ServerDelta:
    """The server's counters over the run: None where the server does not export one."""

    request_success: float | None  # vllm:request_success_total, every finished_reason
    generation_tokens: float | None
    prompt_tokens: float | None
    went_down: tuple[str, ...] = ()  # counters lower after than before: the server restarted in between

    @classmethod
    def from_mapping(cls, delta_: Mapping[str, float] | None) -> ServerDelta:
        """From ``delta()`` / ``LevelMetrics.server_metrics_delta`` (which cannot show a restart)."""
        values = delta_ or {}
        return cls(values.get(REQUEST_SUCCESS), values.get(GENERATION_TOKENS), values.get(PROMPT_TOKENS))


def server_delta(before: Snapshot, after: Snapshot) -> ServerDelta:
    """The increase of the reconciled counters between two scrapes of one server."""
    changes: dict[str, float | None] = {}
    down = []
    for name in RECONCILED:
        b, a = before.values.get(name), after.values.get(name)
        changes[name] = None if a is None else a - (b or 0.0)
        if a is not None and b is not None and a < b:
            down.append(name)
    return ServerDelta(
        changes[REQUEST_SUCCESS], changes[GENERATION_TOKENS], changes[PROMPT_TOKENS], tuple(down)
    )


def reconcile(client: ClientCounts, server: ServerDelta) -> list[str]:
    """Where the client's counts and the server's counters disagree; empty when they agree.

    Every request the client saw complete must have been counted by the server, and the server cannot have
    finished more requests than the client sent. A failed request may or may not have reached the server
    (and may have generated some tokens), so with failures the server's counts are bounded, not fixed:
    completed <= request_success <= sent, and its token counts >= the completed requests' usage. Without
    failures they must be equal. A counter the server does not export, or one that went down (a restart
    between the scrapes), is a problem too: nothing was reconciled.
    """
    problems = []
    if client.sent != client.completed + client.failed:
        problems.append(
            f"client: sent {client.sent} != completed {client.completed} + failed {client.failed}"
        )
    if server.went_down:
        problems.append(
            f"server counters went down between the scrapes ({', '.join(server.went_down)}): the server "
            "restarted, so its counts cover only the time since; scrape before and after on one server life"
        )
        return problems
    success = server.request_success
    if success is None:
        problems.append(f"server exports no {REQUEST_SUCCESS}: requests not reconciled")
    else:
        n = round(success)
        who = f"server counted {n} finished requests ({REQUEST_SUCCESS}), client"
        if n < client.completed:
            problems.append(
                f"{who} saw {client.completed} complete: {client.completed - n} completion(s) the server "
                "did not count (another server answered them, or the counts are wrong)"
            )
        elif n > client.sent:
            problems.append(
                f"{who} sent only {client.sent}: {n - client.sent} request(s) the client did not send "
                "(another client, warm-up or retries reached this server)"
            )
    for label, served, seen in (
        ("generated tokens", server.generation_tokens, client.output_tokens),
        ("prompt tokens", server.prompt_tokens, client.prompt_tokens),
    ):
        if seen is None:
            continue  # the client has no usage to compare
        name = GENERATION_TOKENS if label == "generated tokens" else PROMPT_TOKENS
        if served is None:
            problems.append(f"server exports no {name}: {label} not reconciled")
            continue
        n = round(served)
        if n < seen or (client.failed == 0 and n != seen):
            problems.append(
                f"server counted {n} {label} ({name}), the completed requests' usage sums to {seen}"
                + (f" ({client.failed} failed request(s) may add some)" if client.failed else "")
            )
    return problems
