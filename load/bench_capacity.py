"""How much load one core of this client can generate, beside a peer tool, against the same server.

    python -m load.bench_capacity [--peer-python /tmp/peer/bin/python] [--quick]

The reference server runs in capacity mode (every stream written at once, no pacing) on one core;
each client in turn runs pinned to another core, as a subprocess started the same way. Throughput
is read from the server's own counters (streams finished and SSE events written, from the first
request's arrival to the last stream's end), so every tool is measured by the same stick, whatever
it reports about itself. Scenarios: 256-token streams at 64 and at 256 concurrent (SSE events/s),
and 1-token streams at 64 concurrent (requests/s). Also printed: each tool's own TTFT p50, against
a server that answers in well under a millisecond.

The peer is guidellm (``python -m venv /tmp/peer && /tmp/peer/bin/pip install guidellm``). Its
synthetic prompts need a tokenizer and nothing may be downloaded here, so a small byte-level BPE
tokenizer is trained locally with the peer's own ``tokenizers`` package and passed as a path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "reference-model"
REPO = Path(__file__).resolve().parents[1]

_TOKENIZER_SCRIPT = """
import random, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
random.seed(0)
words = "the of and to in is that for it as was with be by on not this are or from at which but have".split()
text = [" ".join(random.choice(words) for _ in range(200)) for _ in range(200)]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
alphabet = pre_tokenizers.ByteLevel.alphabet()
tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=600, initial_alphabet=alphabet, special_tokens=["<eos>"]))
PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>").save_pretrained(sys.argv[1])
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    output_tokens: int
    concurrency: int
    requests_ours: int
    requests_peer: int


@dataclass(frozen=True)
class Measurement:
    tool: str
    scenario: str
    streams: int
    events: int
    seconds: float
    ttft_p50_ms: float | None
    cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def requests_per_s(self) -> float:
        return self.streams / self.seconds


@contextmanager
def server(cpu: int | None) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "load.reference_server", "--port", "0"],
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


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/debug/stats", timeout=10) as response:
        return json.load(response)


def _reset(url: str) -> None:
    with urllib.request.urlopen(
        urllib.request.Request(url + "/debug/reset", data=b"", method="POST"), timeout=10
    ):
        pass


def _run_pinned(
    argv: list[str], cpu: int | None, cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = os.times()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=cwd,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        check=False,
    )
    end = os.times()
    cpu_s = (end.children_user - start.children_user) + (end.children_system - start.children_system)
    if done.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} {' '.join(argv[1:4])} ... exited {done.returncode}:\n{done.stderr[-2000:]}"
        )
    return done, cpu_s


def _measure(
    url: str, tool: str, scenario: Scenario, argv: list[str], cpu: int | None, ttft: Any
) -> Measurement:
    _reset(url)
    done, cpu_s = _run_pinned(argv, cpu, REPO)
    stats = _stats(url)
    seconds = stats["last_done"] - stats["first_arrival"]
    return Measurement(tool, scenario.name, stats["streams"], stats["events"], seconds, ttft(done), cpu_s)


_WITHOUT_ORJSON = "import sys; sys.modules['orjson'] = None; from load.cli import main; sys.exit(main())"


def measure_ours(
    url: str, scenario: Scenario, cpu: int | None, workdir: Path, orjson: bool = True
) -> Measurement:
    out = workdir / f"ours-{scenario.name}.json"
    program = ["-m", "load"] if orjson else ["-c", _WITHOUT_ORJSON]
    argv = [
        sys.executable, *program, "run", "--endpoint", url, "--model", MODEL, "--input-len", "16",
        "--output-len", str(scenario.output_tokens), "--num-requests", str(scenario.requests_ours),
        "--concurrency", str(scenario.concurrency), "--out", str(out), "--quiet", "--no-server-metrics",
    ]  # fmt: skip

    def ttft(_: subprocess.CompletedProcess[str]) -> float | None:
        return json.loads(out.read_text())["results"][0]["metrics"]["ttft_ms"]["p50"]

    return _measure(url, "load (this suite)" + ("" if orjson else ", no orjson"), scenario, argv, cpu, ttft)


def measure_guidellm(
    url: str, scenario: Scenario, cpu: int | None, workdir: Path, peer_python: Path
) -> Measurement:
    tokenizer = workdir / "tokenizer"
    if not tokenizer.exists():
        subprocess.run(
            [str(peer_python), "-c", _TOKENIZER_SCRIPT, str(tokenizer)], check=True, capture_output=True
        )
    out = workdir / f"guidellm-{scenario.name}.json"
    argv = [
        str(peer_python), "-m", "guidellm", "run",
        "--backend", f"kind=openai_http,target={url},model={MODEL}",
        "--profile", f"kind=concurrent,streams={scenario.concurrency}",
        "--constraint", f"kind=max_requests,count={scenario.requests_peer}",
        "--data", f"kind=synthetic_text,prompt_tokens=16,output_tokens={scenario.output_tokens}",
        "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
        "--output", f"kind=json,path={out}", "--disable-console",
    ]  # fmt: skip
    return _measure(url, "guidellm", scenario, argv, cpu, lambda _: _guidellm_ttft_p50(out))


def _guidellm_ttft_p50(path: Path) -> float | None:
    """The TTFT median guidellm reports (its JSON layout moves between versions: search for it)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    found: list[float] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if "time_to_first_token" in key and "successful" in node and isinstance(node["successful"], dict):
                median = node["successful"].get("median")
                if isinstance(median, int | float):
                    found.append(float(median))
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    walk(report)
    return found[0] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench_capacity", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--peer-python", type=Path, default=Path("/tmp/peer/bin/python"), help="python of the guidellm venv"
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--no-peer", action="store_true", help="measure only this suite's client")
    parser.add_argument(
        "--without-orjson",
        action="store_true",
        help="also measure this client with orjson hidden (stdlib JSON)",
    )
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, server_cpu = (cpus[0], cpus[-1]) if len(cpus) >= 2 else (None, None)
    scale = 4 if args.quick else 1
    scenarios = [
        Scenario("events@64", 256, 64, 4000 // scale, 800 // scale),
        Scenario("events@256", 256, 256, 4000 // scale, 800 // scale),
        Scenario("requests@64", 1, 64, 12000 // scale, 2000 // scale),
    ]
    peer = not args.no_peer
    if peer and not args.peer_python.exists():
        print(
            f"no peer at {args.peer_python}: python -m venv /tmp/peer && /tmp/peer/bin/pip install guidellm",
            file=sys.stderr,
        )
        return 2
    results: list[tuple[Measurement, Measurement | None]] = []
    plain: list[Measurement] = []
    print(
        f"client core {client_cpu}, server core {server_cpu}, load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory() as tmp, server(server_cpu) as url:
        workdir = Path(tmp)
        for scenario in scenarios:
            started = time.monotonic()
            ours = measure_ours(url, scenario, client_cpu, workdir)
            theirs = measure_guidellm(url, scenario, client_cpu, workdir, args.peer_python) if peer else None
            results.append((ours, theirs))
            if args.without_orjson:
                plain.append(measure_ours(url, scenario, client_cpu, workdir, orjson=False))
            print(f"{scenario.name} measured in {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(_table(results, plain))
    return 0


def _table(results: list[tuple[Measurement, Measurement | None]], plain: list[Measurement]) -> str:
    def f(x: float | None, digits: int = 0) -> str:
        return "-" if x is None else f"{x:,.{digits}f}"

    lines = [
        "| scenario | tool | SSE events/s | requests/s | client CPU s | TTFT p50 reported (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    extra: dict[str, Measurement] = {m.scenario: m for m in plain}
    for ours, theirs in results:
        for m in (ours, extra.get(ours.scenario), theirs):
            if m is not None:
                lines.append(
                    f"| {m.scenario} | {m.tool} | {f(m.events_per_s)} | {f(m.requests_per_s)} | {f(m.cpu_s, 1)} | {f(m.ttft_p50_ms, 2)} |"
                )
        if theirs is None:
            continue
        for m in (ours, extra.get(ours.scenario)):
            if m is not None:
                lines.append(
                    f"| {m.scenario} | ratio {m.tool} / {theirs.tool} | {m.events_per_s / theirs.events_per_s:.1f}x | "
                    f"{m.requests_per_s / theirs.requests_per_s:.1f}x | | |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
