"""Locust users that stream from a vLLM (OpenAI-compatible) server and keep the real numbers.

Run it only as its own process (``locust -f load/locust/locustfile.py ...``, or ``python -m load.locust``):
importing locust monkey-patches the process with gevent. It needs Locust and its three helper modules
next to this file (Locust puts this file's directory on ``sys.path``), nothing else, so it also runs in a
stock ``locustio/locust`` image: ``locust_stream.py`` (prompts, request bodies, SSE parsing, raw
records), ``locust_options.py`` (this file's options, their checks, the SLO judgement) and
``locust_collect.py`` (where raw records go, the master's collection). That is why it imports them as
top-level modules, not as ``load.locust.locust_stream``: in the image (the in-cluster ConfigMap mounts
just these files, ``SHIPPED_FILES`` in load/locust/incluster.py) there is no ``load`` package.

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
import logging
import os
import random
from time import perf_counter
from typing import Any

import gevent
from gevent import GreenletExit
from locust import FastHttpUser, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust_collect import MESSAGE, MasterCollector, RecordSink, add_routes  # type: ignore[import-not-found]  # shipped next to this file
from locust_options import add_options, problems, slo_breaches  # type: ignore[import-not-found]  # shipped next to this file
from locust_stream import (  # type: ignore[import-not-found]  # shipped next to this file
    API_PATHS,
    RawRecord,
    SseLines,
    carries_token_for,
    clip,
    describe,
    prompt,
    request_body,
)

log = logging.getLogger("lws-suite")
SINK = RecordSink()  # one per process: a Locust process runs one Environment
COLLECTOR = MasterCollector()

events.init_command_line_parser.add_listener(add_options)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    # gevent's loop caches its clock between iterations, and Locust arms --run-time (gevent.spawn_later) right after
    # this event, with no iteration since it imported this file: on a slow import the timer was armed against a
    # clock seconds old, and a 2 s run ended after 40 ms with no request (measured). Refresh it first.
    gevent.get_hub().loop.update_now()
    runner = environment.runner
    options = environment.parsed_options
    if options is None or isinstance(runner, WorkerRunner):  # workers get the master's options at spawn
        return
    found = problems(options)
    if found:
        log.error("lws-suite locustfile: %s", "; ".join(found))
        raise SystemExit(2)
    if isinstance(runner, MasterRunner) and options.records_to_master:
        COLLECTOR.open(options.raw_dir)
        runner.register_message(MESSAGE, COLLECTOR.receive)
        if environment.web_ui is not None:
            add_routes(environment, runner, COLLECTOR)


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
