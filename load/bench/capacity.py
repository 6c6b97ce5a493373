"""Whether one core of ``load run``'s client keeps up, measured against the minimal aiohttp loop.

    python -m load.bench.capacity [--repeats 3] [--shapes fast,paced,long] [--quick]
                                   [--peer-python /tmp/peer/bin/python]

The reference server (``load.bench.reference_server``) runs on one core; each client in turn runs as
a subprocess pinned to another core: the minimal aiohttp loop (``load.bench.minimal``, what any
aiohttp client pays at least), ``python -m load run``, and optionally guidellm. Throughput is read
from the server's own counters (SSE events written, from the first request's arrival to the last
stream's end), so every client is measured by the same stick, whatever it reports about itself.

Shapes (``--shapes``):
  fast   as fast as possible: every stream written at once, 256-token responses, 64 streams
         (many events per socket read: the client's cost per read is shared by many events)
  paced  a decode loop: every stream one token per 5 ms, 256 streams, 51,200 events/s offered
         (each read carries one event, as from vLLM's decode loop: the client's cost per event)
  long   long contexts: 32k-token prompts, 8k-token responses, 64 streams, as fast as possible

Each shape runs ``--repeats`` times, the clients alternating; the table shows medians (and the range)
of events/s, the ratio ``load run`` / minimal loop, each client's CPU per event (user + system, less
its start-up: the CPU of one 1-token request) and the TTFT p50 ``load run`` reported. Run it on a quiet machine: other work on either core lowers
every figure (the ratio, measured in the same run, moves least); the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from load.bench.peer import guidellm_argv, guidellm_ttft_p50

MODEL = "reference-model"
REPO = Path(__file__).resolve().parents[2]
MINIMAL, OURS, PEER = "minimal aiohttp loop", "load run", "guidellm"
PACED_TARGET_RATIO, PACED_TARGET_EVENTS = 0.95, 49_000  # issue 14: keep up with a decode loop


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    concurrency: int
    requests: int
    input_len: int
    output_len: int
    itl_ms: float  # 0: every stream written at once

    @property
    def offered_events_per_s(self) -> float | None:
        return self.concurrency * 1000.0 / self.itl_ms if self.itl_ms else None


SHAPES = {
    "fast": Shape("fast", "as fast as possible, 64 streams, 256 tokens", 64, 2000, 16, 256, 0.0),
    "paced": Shape("paced", "1 token / 5 ms per stream, 256 streams", 256, 1536, 16, 256, 5.0),
    "long": Shape("long", "32k-token prompts, 8k-token responses, 64 streams", 64, 128, 32768, 8192, 0.0),
}


@dataclass(frozen=True)
class Measurement:
    client: str
    shape: str
    streams: int
    events: int
    seconds: float
    cpu_s: float
    ttft_p50_ms: float | None
    startup_cpu_s: float = 0.0  # the same client's CPU for one 1-token request: its start-up

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return max(0.0, self.cpu_s - self.startup_cpu_s) / self.events * 1e6


@contextmanager
def server(shape: Shape, cpu: int | None) -> Iterator[str]:
    pace = ["--ttft-ms", str(shape.itl_ms), "--itl-ms", str(shape.itl_ms)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "load.bench.reference_server", "--port", "0", *pace],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("listening "):
            raise RuntimeError(f"reference server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait()


def _get(url: str, method: str = "GET") -> dict[str, object]:
    data = b"" if method == "POST" else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=10) as r:
        result: dict[str, object] = json.load(r)
        return result


def _run_pinned(client: str, argv: list[str], cpu: int | None) -> float:
    """Run one client pinned to ``cpu``; its CPU seconds (user + system)."""
    start = os.times()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=REPO,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        check=False,
    )
    end = os.times()
    if done.returncode != 0:
        raise RuntimeError(f"{client} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return (end.children_user - start.children_user) + (end.children_system - start.children_system)


def measure(
    url: str, client: str, shape: Shape, cpu: int | None, argv: list[str], ttft: Callable[[], float | None]
) -> Measurement:
    _get(url + "/debug/reset", "POST")
    cpu_s = _run_pinned(client, argv, cpu)
    stats = _get(url + "/debug/stats")
    seconds = float(stats["last_done"]) - float(stats["first_arrival"])  # type: ignore[arg-type]
    streams, events = int(stats["streams"]), int(stats["events"])  # type: ignore[call-overload]
    if streams != shape.requests:
        raise RuntimeError(f"{client}: the server finished {streams} streams of {shape.requests}")
    return Measurement(client, shape.name, streams, events, seconds, cpu_s, ttft())


def client_commands(
    url: str, shape: Shape, workdir: Path, peer_python: Path | None
) -> dict[str, tuple[list[str], Callable[[], float | None]]]:
    sizes = ["--input-len", str(shape.input_len), "--output-len", str(shape.output_len)]
    out = workdir / f"load-{shape.name}.json"

    def ours_ttft() -> float | None:
        metrics = json.loads(out.read_text())["results"][0]["metrics"]
        if metrics["requests"]["failed"]:
            raise RuntimeError(f"load run: failed requests {metrics['requests']['errors_by_reason']}")
        p50: float | None = metrics["ttft_ms"]["p50"]
        return p50

    commands: dict[str, tuple[list[str], Callable[[], float | None]]] = {
        MINIMAL: (
            [sys.executable, "-m", "load.bench.minimal", "--url", url, "--concurrency", str(shape.concurrency),
             "--requests", str(shape.requests), *sizes],
            lambda: None,
        ),
        OURS: (
            [sys.executable, "-m", "load", "run", "--endpoint", url, "--model", MODEL, *sizes,
             "--num-requests", str(shape.requests), "--concurrency", str(shape.concurrency), "--out", str(out),
             "--quiet", "--no-server-metrics"],
            ours_ttft,
        ),
    }  # fmt: skip
    if peer_python is not None:
        argv, report = guidellm_argv(url, MODEL, shape, workdir, peer_python)
        commands[PEER] = (argv, lambda: guidellm_ttft_p50(report))
    return commands


def run_shape(
    shape: Shape, repeats: int, cpus: tuple[int | None, int | None], workdir: Path, peer: Path | None
) -> list[Measurement]:
    client_cpu, server_cpu = cpus
    found: list[Measurement] = []
    with server(shape, server_cpu) as url:
        commands = client_commands(url, shape, workdir, peer)
        one = Shape(**{**shape.__dict__, "concurrency": 1, "requests": 1, "output_len": 1})
        startup = {
            c: _run_pinned(c, argv, client_cpu)
            for c, (argv, _) in client_commands(url, one, workdir, peer).items()
        }
        for repeat in range(repeats):
            for client, (argv, ttft) in commands.items():
                m = replace(
                    measure(url, client, shape, client_cpu, argv, ttft), startup_cpu_s=startup[client]
                )
                found.append(m)
                print(
                    f"{shape.name} #{repeat + 1} {client}: {m.events_per_s:,.0f} events/s, "
                    f"client CPU {m.cpu_s:.1f} s ({m.cpu_us_per_event:.1f} µs per event after start-up), "
                    f"load average {os.getloadavg()[0]:.2f}",
                    file=sys.stderr,
                )
    return found


def table(shapes: list[Shape], found: list[Measurement], clients: list[str]) -> str:
    def median(shape: Shape, client: str, value: Callable[[Measurement], float | None]) -> float | None:
        values = [
            v for m in found if m.shape == shape.name and m.client == client if (v := value(m)) is not None
        ]
        return statistics.median(values) if values else None

    def spread(shape: Shape, client: str) -> str:
        values = [m.events_per_s for m in found if m.shape == shape.name and m.client == client]
        mid = median(shape, client, lambda m: m.events_per_s)
        return "-" if mid is None else f"{mid:,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    head = ["shape", "offered events/s", *(f"{c} events/s" for c in clients), "ratio load run / minimal"]
    lines = [
        "| "
        + " | ".join(head)
        + " | client CPU µs per event ("
        + " / ".join(clients)
        + ") | load run TTFT p50 ms |"
    ]
    lines.append("| --- " * (len(head) + 2) + "|")
    verdicts: list[str] = []
    for shape in shapes:
        mine = median(shape, OURS, lambda m: m.events_per_s)
        base = median(shape, MINIMAL, lambda m: m.events_per_s)
        ratio = f"{mine / base:.2f}x" if mine and base else "-"
        offered = shape.offered_events_per_s
        cpu = " / ".join(f"{median(shape, c, lambda m: m.cpu_us_per_event) or 0:.1f}" for c in clients)
        ttft = median(shape, OURS, lambda m: m.ttft_p50_ms)
        cells = [
            f"{shape.name}: {shape.description}",
            "-" if offered is None else f"{offered:,.0f}",
            *(spread(shape, c) for c in clients),
            ratio, cpu, "-" if ttft is None else f"{ttft:.2f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
        if offered is not None and mine and base:
            ok = mine / base >= PACED_TARGET_RATIO and (
                mine >= PACED_TARGET_EVENTS or base < PACED_TARGET_EVENTS
            )
            verdicts.append(
                f"{shape.name}: load run delivered {mine:,.0f} of {offered:,.0f} events/s offered, the minimal loop "
                f"{base:,.0f}; ratio {mine / base:.2f} (target >= {PACED_TARGET_RATIO}, and >= "
                f"{PACED_TARGET_EVENTS:,} where the minimal loop gets there): {'keeps up' if ok else 'FALLS BEHIND'}"
            )
    return "\n".join([*lines, "", *verdicts])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench.capacity",
        description=__doc__.split("\n\n")[0],
        epilog="medians of --repeats runs per shape, clients alternating; events/s from the server's counters",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per client and shape (default 3)")
    parser.add_argument("--shapes", default="fast,paced,long", help="comma-separated: fast, paced, long")
    parser.add_argument("--quick", action="store_true", help="a quarter of the requests (a smoke run)")
    parser.add_argument(
        "--peer-python", type=Path, help="also measure guidellm installed in this python's venv"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.shapes.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown or not names or args.repeats < 1:
        print(f"--shapes takes {', '.join(SHAPES)} and --repeats >= 1; got {args.shapes!r}, {args.repeats}", file=sys.stderr)  # fmt: skip
        return 2
    if args.peer_python is not None and not args.peer_python.exists():
        print(f"no python at {args.peer_python}: python -m venv /tmp/peer && /tmp/peer/bin/pip install guidellm", file=sys.stderr)  # fmt: skip
        return 2
    shapes = [SHAPES[n] for n in names]
    if args.quick:
        shapes = [Shape(**{**s.__dict__, "requests": max(s.concurrency, s.requests // 4)}) for s in shapes]
    cpus = sorted(os.sched_getaffinity(0))
    pinned = (cpus[0], cpus[-1]) if len(cpus) >= 2 else (None, None)
    print(
        f"client core {pinned[0]}, server core {pinned[1]}, load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    found: list[Measurement] = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            started = time.monotonic()
            found += run_shape(shape, args.repeats, pinned, Path(tmp), args.peer_python)
            print(f"{shape.name} measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
    clients = [MINIMAL, OURS] + ([PEER] if args.peer_python is not None else [])
    print(table(shapes, found, clients))
    print(f"load average at the end {os.getloadavg()[0]:.2f} (over 0.5 means other work shared the cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
