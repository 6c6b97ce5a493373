"""Locust users that stream from a vLLM (OpenAI-compatible) server and keep the real numbers.

Run it only as its own process (``locust -f load/locust/locustfile.py ...``, or ``python -m load.locust``):
importing locust monkey-patches the process with gevent. It needs Locust and ``locust_stream.py`` (next to
this file; Locust puts this file's directory on ``sys.path``), nothing else, so it also runs in a stock
``locustio/locust`` image. That is why it imports ``locust_stream`` as a top-level module, not as
``load.locust.locust_stream``: in the image (the in-cluster ConfigMap mounts just these two files) there
is no ``load`` package.

What Locust shows (its statistics round response times to about two significant digits, so they are a
live view, not the result):
- ``STREAM <path>``: one entry per request, response time = E2E latency (send to last token; for a
  failure, send to the failure), "size" = output tokens (``usage.completion_tokens``), failures by reason;
- ``TTFT <path>`` and ``TPOT <path>``: one pseudo-request per completed request, response time = its TTFT
  and TPOT in ms (these also count in Locust's "Aggregated" row and its requests/s);
- ``GET /v1/models (warm-up)``: each user opens its connection before its first measured request.
Locust's own response time for a streamed request would be time-to-headers; it is never used.

The real numbers: every process that runs users writes each request as a JSON line (send time, every
token-carrying chunk's time, end, usage, failure reason; format in locust_stream.py) to
``--raw-dir``/<host>-<pid>.jsonl; ``python -m load.locust`` merges those files into the suite's
result schema with load/metrics.py. With ``--records-to-master`` the workers also send their records to
the master (a Locust custom message), which appends them to ``--raw-dir``/collected.jsonl and, with its
web UI up, serves them at ``/lws-suite/records`` (state at ``/lws-suite/status``): how in-cluster runs
are collected (load/locust/incluster.py).

Exit code: in a ``quitting`` listener the master (or the single process) sets 1 when a percentile
(``--slo-percentile``, default 99) of TTFT, TPOT or E2E latency, by Locust's rounded statistics, is above
its ``--slo-*-ms`` threshold; otherwise Locust's own rule applies (1 if any request failed).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any, TextIO

from gevent import GreenletExit
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner
from locust_stream import (  # type: ignore[import-not-found]  # shipped next to this file
    API_PATHS,
    RawRecord,
    SseLines,
    carries_token_for,
    clip,
    describe,
    prompt,
    request_body,
    worker_id,
    worker_line,
)

log = logging.getLogger("lws-suite")
MESSAGE = "lws_records"
FORWARD_BATCH = 64
FORWARD_INTERVAL_S = 1.0
SLO_ENTRIES = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "e2el_ms": "STREAM"}


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--model", default="", env_var="LOCUST_MODEL", help="served model name (required)")
    parser.add_argument(
        "--api",
        default="completions",
        choices=sorted(API_PATHS),
        env_var="LOCUST_API",
        help="completions (default) or chat",
    )
    parser.add_argument(
        "--input-len",
        type=int,
        default=128,
        env_var="LOCUST_INPUT_LEN",
        help="prompt length in words, about one token each (default 128)",
    )
    parser.add_argument(
        "--output-len",
        type=int,
        default=128,
        env_var="LOCUST_OUTPUT_LEN",
        help="max_tokens of every request (default 128)",
    )
    parser.add_argument(
        "--no-ignore-eos",
        action="store_true",
        default=False,
        env_var="LOCUST_NO_IGNORE_EOS",
        help="do not send ignore_eos (sent by default, so every output is --output-len)",
    )
    parser.add_argument(
        "--prompt-seed",
        type=int,
        default=0,
        env_var="LOCUST_PROMPT_SEED",
        help="seed of the random prompts (default 0)",
    )
    for name, what in (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2el", "E2E latency")):
        parser.add_argument(
            f"--slo-{name}-ms",
            type=float,
            default=None,
            env_var=f"LOCUST_SLO_{name.upper()}_MS",
            help=f"SLO: {what} threshold in ms; above it at --slo-percentile the exit code is 1",
        )
    parser.add_argument(
        "--slo-percentile",
        type=float,
        default=99.0,
        env_var="LOCUST_SLO_PERCENTILE",
        help="percentile the SLO thresholds apply to (default 99)",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=600.0,
        env_var="LOCUST_READ_TIMEOUT",
        help="longest silence within a response, s (default 600)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        env_var="LOCUST_CONNECT_TIMEOUT",
        help="connect timeout, s (default 10)",
    )
    parser.add_argument(
        "--raw-dir",
        default="",
        env_var="LOCUST_RAW_DIR",
        include_in_web_ui=False,
        help="write every request's raw timings as JSON lines into this directory",
    )
    parser.add_argument(
        "--records-to-master",
        action="store_true",
        default=False,
        env_var="LOCUST_RECORDS_TO_MASTER",
        include_in_web_ui=False,
        help="workers also send their raw records to the master (in-cluster collection)",
    )


def _problems(options: Any) -> list[str]:
    problems = []
    if not options.model:
        problems.append("--model is required (the served model name)")
    for name in ("input_len", "output_len"):
        if getattr(options, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(options, name)}")
    for key in SLO_ENTRIES:
        try:
            value = slo_threshold(options, key)
        except ValueError:
            value = -1.0
        if value is not None and not value > 0:
            problems.append(
                f"--slo-{key.replace('_', '-')} must be a number > 0 (ms), got {getattr(options, f'slo_{key}')}"
            )
    if not 0 < options.slo_percentile <= 100:
        problems.append(f"--slo-percentile must be in (0, 100], got {options.slo_percentile}")
    for name in ("read_timeout", "connect_timeout"):
        if not getattr(options, name) > 0:
            problems.append(f"--{name.replace('_', '-')} must be > 0 s, got {getattr(options, name)}")
    return problems


class RecordSink:
    """This process's raw records: a JSON-lines file and, on a worker with --records-to-master, batches
    sent to the master. One per process (a Locust process runs one Environment)."""

    def __init__(self) -> None:
        self.worker = worker_id()
        self._index = itertools.count()
        self._file: TextIO | None = None
        self._anchor: str | None = None
        self._pending: list[str] = []
        self._last_sent = 0.0
        self._environment: Environment | None = None

    def start(self, environment: Environment) -> None:
        self._environment = environment
        runner = environment.runner
        role = "worker" if isinstance(runner, WorkerRunner) else "local"
        index = getattr(runner, "worker_index", None)
        self._anchor = worker_line(self.worker, role, index)
        options = environment.parsed_options
        if options is not None and options.raw_dir and self._file is None:
            directory = Path(options.raw_dir)
            directory.mkdir(parents=True, exist_ok=True)
            self._file = (directory / f"{self.worker}.jsonl").open("a", encoding="utf-8")
            self._file.write(self._anchor + "\n")
            self._file.flush()

    def next_index(self) -> int:
        return next(self._index)

    def add(self, record: RawRecord) -> None:
        line = record.line()
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()  # a crash loses at most the request in flight
        if self._forwarding:
            self._pending.append(line)
            if (
                len(self._pending) >= FORWARD_BATCH
                or time.monotonic() - self._last_sent >= FORWARD_INTERVAL_S
            ):
                self.send(final=False)

    @property
    def _forwarding(self) -> bool:
        env = self._environment
        return (
            env is not None
            and isinstance(env.runner, WorkerRunner)
            and env.parsed_options is not None
            and bool(env.parsed_options.records_to_master)
        )

    def send(self, *, final: bool) -> None:
        if not self._forwarding or self._environment is None or self._environment.runner is None:
            return
        lines, self._pending = self._pending, []
        self._last_sent = time.monotonic()
        self._environment.runner.send_message(
            MESSAGE, {"worker": self.worker, "anchor": self._anchor, "lines": lines, "final": final}
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class MasterCollector:
    """On the master with --records-to-master: the workers' records in ``collected.jsonl`` and whether
    every worker the test started with has sent its last batch (sent after its users stopped). The
    workers are noted at test start: Locust's master forgets a worker once it reports it has stopped."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._file: TextIO | None = None
        self._anchors: set[str] = set()
        self.expected: set[str] = set()
        self.final_from: set[str] = set()
        self.records = 0
        self.test_stopped = False

    def start(self, runner: MasterRunner) -> None:
        self.test_stopped = False
        self.final_from.clear()
        self.expected = {c.id for c in runner.clients.all}

    def open(self, raw_dir: str) -> None:
        directory = Path(raw_dir or ".")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "collected.jsonl"
        self._file = self.path.open("a", encoding="utf-8")

    def receive(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        if self._file is None:
            return
        if data["worker"] not in self._anchors and data.get("anchor"):
            self._file.write(data["anchor"] + "\n")
            self._anchors.add(data["worker"])
        for line in data["lines"]:
            self._file.write(line + "\n")
        self._file.flush()
        self.records += len(data["lines"])
        if data["final"]:
            self.final_from.add(msg.node_id)

    def status(self, runner: MasterRunner) -> dict[str, Any]:
        missing = sorted(self.expected - self.final_from)
        return {
            "state": runner.state,
            "test_stopped": self.test_stopped,
            "workers": sorted(self.expected),
            "final_from": sorted(self.final_from),
            "missing": missing,
            "records": self.records,
            "done": self.test_stopped
            and runner.state == STATE_STOPPED
            and bool(self.expected)
            and not missing,
        }


SINK = RecordSink()
COLLECTOR = MasterCollector()


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    options = environment.parsed_options
    if options is None or isinstance(runner, WorkerRunner):  # workers get the master's options at spawn
        return
    problems = _problems(options)
    if problems:
        log.error("lws-suite locustfile: %s", "; ".join(problems))
        raise SystemExit(2)
    if isinstance(runner, MasterRunner) and options.records_to_master:
        COLLECTOR.open(options.raw_dir)
        runner.register_message(MESSAGE, COLLECTOR.receive)
        if environment.web_ui is not None:
            _add_routes(environment, runner)


def _add_routes(environment: Environment, runner: MasterRunner) -> None:
    from flask import Response  # Locust's web UI is Flask

    app: Any = environment.web_ui.app  # type: ignore[union-attr]

    @app.route("/lws-suite/status")
    def lws_status() -> Response:
        return Response(json.dumps(COLLECTOR.status(runner)), mimetype="application/json")

    @app.route("/lws-suite/records")
    def lws_records() -> Response:
        path = COLLECTOR.path

        def lines() -> Iterator[bytes]:
            if path is not None and path.exists():
                with path.open("rb") as handle:
                    yield from handle

        return Response(lines(), mimetype="application/x-ndjson")


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        COLLECTOR.start(environment.runner)
        return
    SINK.start(environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        COLLECTOR.test_stopped = True
        return
    SINK.send(final=True)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    SINK.close()
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    breaches = slo_breaches(environment)
    if breaches:
        log.error("SLO breached (Locust's rounded percentiles): %s", "; ".join(breaches))
        environment.process_exit_code = 1


def slo_threshold(options: Any, key: str) -> float | None:
    """The threshold in ms, or None. Locust's web UI hands options without a default back as text."""
    value = getattr(options, f"slo_{key}", None)
    return None if value in (None, "") else float(value)


def slo_breaches(environment: Environment) -> list[str]:
    options: Any = environment.parsed_options
    path = API_PATHS[options.api]
    q = float(options.slo_percentile)
    breaches = []
    for key, request_type in SLO_ENTRIES.items():
        threshold = slo_threshold(options, key)
        if threshold is None:
            continue
        entry = environment.stats.get(path, request_type)
        if entry.num_requests - entry.num_failures <= 0:
            breaches.append(f"{key} <= {threshold:g}: no completed request to check")
            continue
        value = entry.get_response_time_percentile(q / 100)
        if value > threshold:
            breaches.append(f"{key} p{q:g} {value:g} > {threshold:g}")
    return breaches


class OpenAIStreamUser(FastHttpUser):
    """A closed-loop user: one streaming request after another, no think time."""

    wait_time = constant(0)
    _user_numbers = itertools.count()

    def __init__(self, environment: Environment) -> None:
        options: Any = environment.parsed_options
        self.network_timeout = options.read_timeout
        self.connection_timeout = options.connect_timeout
        super().__init__(environment)
        # Seeded by (seed, worker index, user number): a rerun with the same options sends the same prompts.
        number = next(self._user_numbers)
        index = getattr(environment.runner, "worker_index", 0)
        self.rng = random.Random(f"{options.prompt_seed}:{index}:{number}")
        self.path = API_PATHS[options.api]
        self.headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
        if os.environ.get("OPENAI_API_KEY"):
            self.headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"

    def on_start(self) -> None:
        # Open the connection now, so the first measured request does not pay for the connect.
        self.client.get("/v1/models", name="/v1/models (warm-up)", headers=self.headers)

    @task
    def stream(self) -> None:
        options: Any = self.environment.parsed_options
        record = RawRecord(SINK.worker, SINK.next_index(), perf_counter())
        body = request_body(
            options.model,
            options.api,
            prompt(self.rng, options.input_len),
            options.output_len,
            not options.no_ignore_eos,
        )
        try:
            record.sent = perf_counter()
            with self.client.post(
                self.path, data=body, headers=self.headers, stream=True, catch_response=True, name=self.path
            ) as response:
                self._read(response, record)
                self._report(response, record)
        except GreenletExit:
            record.fail(
                "interrupted", "the user was stopped while this request was in flight", perf_counter()
            )
            raise
        finally:
            SINK.add(record)
        self._report_timings(record)

    def _read(self, response: Any, record: RawRecord) -> None:
        error = getattr(response, "error", None)
        record.status = response.status_code or None
        if record.status is None:
            record.fail(_connection_reason(error), describe(error) if error else None, perf_counter())
            return
        if record.status != 200:
            try:
                detail = clip(response.content or b"")
            except Exception as exc:  # the body may be cut off; the status says enough
                detail = f"(body unreadable: {describe(exc)})"
            record.fail(f"http_{record.status}", detail, perf_counter())
            return
        raw = response._response  # geventhttpclient's response: read line by line as bytes arrive
        decoder = SseLines()
        carries = carries_token_for(self.environment.parsed_options.api)
        done = False
        try:
            while line := raw.readline(b"\n"):
                now = perf_counter()
                payload = decoder.feed(line)
                if payload is None or done or record.error is not None:
                    continue  # after a failure: drain, so the connection can be reused
                if payload == b"[DONE]":
                    done = True
                elif reason := record.take_event(payload, carries, now):
                    record.fail(reason, clip(payload), now)
            end = perf_counter()
            for line in [*raw.read().splitlines(keepends=True), b""]:  # bytes after the last newline
                payload = decoder.feed(line)
                if payload == b"[DONE]":
                    done = True
                elif (
                    payload is not None and not done and (reason := record.take_event(payload, carries, end))
                ):
                    record.fail(reason, clip(payload), end)
        except TimeoutError as exc:
            record.fail("timeout", describe(exc), perf_counter())
        except (ConnectionError, OSError) as exc:
            record.fail("connection_reset", describe(exc), perf_counter())
        except Exception as exc:  # geventhttpclient's parse errors and the like: data, not a crash
            record.fail("client_error", describe(exc), perf_counter())
        else:
            record.close(done, end)

    def _report(self, response: Any, record: RawRecord) -> None:
        meta = response.request_meta
        meta["request_type"] = "STREAM"
        end = record.chunk_times[-1] if record.ok else record.finished
        meta["response_time"] = (
            (end - record.sent) * 1e3 if end is not None and record.sent is not None else 0
        )
        meta["response_length"] = record.output_tokens or 0
        if record.ok:
            response.success()
        else:
            response.failure(record.error)

    def _report_timings(self, record: RawRecord) -> None:
        for request_type, value in (("TTFT", record.ttft_ms()), ("TPOT", record.tpot_ms())):
            if value is not None:
                self.environment.events.request.fire(
                    request_type=request_type,
                    name=self.path,
                    response_time=value,
                    response_length=0,
                    exception=None,
                    context={},
                )


def _connection_reason(error: BaseException | None) -> str:
    if isinstance(error, TimeoutError) or type(error).__name__ == "Timeout":
        return "timeout"
    if isinstance(error, ConnectionRefusedError | OSError) and not isinstance(error, ConnectionResetError):
        return "connect_error"
    if isinstance(error, ConnectionError):
        return "connection_reset"
    return "client_error"
