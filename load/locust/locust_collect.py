"""Where the locustfile's raw records go: ``RecordSink`` in every process that runs users (a JSON-lines
file under ``--raw-dir`` and, on a worker with ``--records-to-master``, batches sent to the master as a
Locust message), ``MasterCollector`` on the master (the workers' batches in ``collected.jsonl``, and
whether every worker has sent its last one), and the master's routes that serve both to the suite
(load/locust/incluster.py reads them through a port-forward).

Standard library and Locust only, because it ships next to the locustfile like ``locust_stream.py``
(in-cluster, the ConfigMap of load/locust/manifests.py holds it: ``SHIPPED_FILES`` in
load/locust/incluster.py), and a stock ``locustio/locust`` image has nothing of this suite. The locustfile
imports it as the top-level module ``locust_collect`` (Locust puts the locustfile's directory on
``sys.path``), and it imports its sibling ``locust_stream`` the same way. Like the locustfile, it is
imported only in Locust's own processes: importing locust monkey-patches the process with gevent.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from locust.env import Environment
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner
from locust_stream import RawRecord, worker_id, worker_line  # type: ignore[import-not-found]  # shipped next to this file

MESSAGE = "lws_records"
FORWARD_BATCH = 64
FORWARD_INTERVAL_S = 1.0


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


def add_routes(environment: Environment, runner: MasterRunner, collector: MasterCollector) -> None:
    """The master's web UI routes of the in-cluster collection: ``/lws-suite/status`` (``collector.status``)
    and ``/lws-suite/records`` (``collected.jsonl`` as JSON lines)."""
    from flask import Response  # Locust's web UI is Flask

    app: Any = environment.web_ui.app  # type: ignore[union-attr]

    @app.route("/lws-suite/status")
    def lws_status() -> Response:
        return Response(json.dumps(collector.status(runner)), mimetype="application/json")

    @app.route("/lws-suite/records")
    def lws_records() -> Response:
        path = collector.path

        def lines() -> Iterator[bytes]:
            if path is not None and path.exists():
                with path.open("rb") as handle:
                    yield from handle

        return Response(lines(), mimetype="application/x-ndjson")
