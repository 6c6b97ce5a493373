"""Log evidence that a multi-node vLLM group really came up: every rank loaded its weights, across nodes.

Read from the logs of every pod of a group (with the multiprocessing launch, the other node's ranks log in
the worker pod), tolerant of vLLM's format changes (research/lws_vllm.md §6, §9):
- weight loading: `Loading model weights took X GB` (V0) or `Model loading took X GiB [memory] and Y seconds`;
- rank prefixes: `(RayWorkerWrapper pid=N, ip=A)`, nested under `(EngineCore_DP0 pid=N)`, or none for ranks
  in the driver process; `ip=` appears only for actors on another node than the driver;
- Ray's deduplication: `... [repeated 6x across cluster]` stands for 6 more identical lines;
- engine config: `tensor_parallel_size=8, pipeline_parallel_size=2` inside the config line;
- server start: `Application startup complete.` / `Starting vLLM API server ...` / `Starting vLLM server on`;
- Ray cluster: `All ray workers are active and the ray cluster is initialized successfully.`

Run on saved logs: `python -m suite.conformance.checks.log_evidence --tp 8 --pp 2 [--size 2] LOG...`
(exit 0 when the evidence is complete, 1 when something is missing, 2 for bad input).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

WEIGHTS = re.compile(
    r"(?:Loading model weights took|Model loading took) (?P<size>[0-9]+(?:\.[0-9]+)?) ?(?P<unit>GiB|GB)"
)
ACTOR = re.compile(
    r"\((?P<kind>RayWorkerWrapper|Worker\w*|VllmWorker[^)]*?) pid=(?P<pid>\d+)(?:, ip=(?P<ip>[^)\s]+))?\)"
)
REPEATED = re.compile(r"\[repeated (?P<n>\d+)x across cluster\]")
TP = re.compile(r"tensor_parallel_size=(\d+)")
PP = re.compile(r"pipeline_parallel_size=(\d+)")
SERVER_STARTED = re.compile(r"Application startup complete|Starting vLLM API server|Starting vLLM server on")
RAY_READY = re.compile(r"All ray workers are active and the ray cluster is initialized successfully")
RAY_PROGRESS = re.compile(r"Wait for all ray workers to be active\. (\d+)/(\d+) is active")
ERRORS = re.compile(
    r"Traceback \(most recent call last\)|NCCL error|ncclInternalError|RuntimeError|"
    r"Error: Missing argument|timed out\.$|No such file or directory"
)
LOCAL = "local"  # ranks without ip=: on the node of the pod whose log holds the line


@dataclass(frozen=True)
class WeightLine:
    pod: str
    node: str  # the actor's ip, or "local:<pod>"
    size_gib: float
    count: int  # 1, or N for a "[repeated Nx across cluster]" line
    line: str


@dataclass
class Evidence:
    weight_lines: list[WeightLine] = field(default_factory=list)
    tp: set[int] = field(default_factory=set)
    pp: set[int] = field(default_factory=set)
    server_started: bool = False
    ray_ready: bool = False
    ray_progress: str | None = None
    errors: list[str] = field(default_factory=list)
    excerpt: list[str] = field(default_factory=list)

    @property
    def ranks(self) -> int:
        return sum(w.count for w in self.weight_lines)

    @property
    def nodes(self) -> list[str]:
        return sorted({w.node for w in self.weight_lines})

    def problems(self, *, tp: int, pp: int, size: int) -> list[str]:
        found = []
        world = tp * pp
        if self.ranks != world:
            hint = (
                " Ray may have deduplicated the lines; set RAY_DEDUP_LOGS=0 in the pod env"
                if 0 < self.ranks < world
                else ""
            )
            found.append(
                f"weight-loading lines for {self.ranks} ranks, expected TP {tp} x PP {pp} = {world}.{hint}"
            )
        if size > 1 and len(self.nodes) < min(size, 2):
            found.append(
                f"weight loading seen from {len(self.nodes)} node address(es) {self.nodes}; a group of "
                f"{size} pods must load on at least 2 nodes"
            )
        sizes = [w.size_gib for w in self.weight_lines]
        if sizes:
            median = statistics.median(sizes)
            outliers = [w for w in self.weight_lines if median and abs(w.size_gib - median) / median > 0.10]
            if outliers:
                found.append(
                    f"per-rank weight sizes differ by more than 10% from the median {median:.2f} GiB: "
                    + "; ".join(f"{w.node} {w.size_gib:.2f} GiB" for w in outliers[:4])
                )
        if self.tp != {tp}:
            found.append(
                f"engine config tensor_parallel_size {sorted(self.tp) or 'not logged'}, expected {tp}"
            )
        if self.pp != {pp} and not (pp == 1 and not self.pp):
            found.append(
                f"engine config pipeline_parallel_size {sorted(self.pp) or 'not logged'}, expected {pp}"
            )
        if not self.server_started:
            found.append("no server-start line (Application startup complete / Starting vLLM API server)")
        if size > 1 and not self.ray_ready:
            seen = f"; last progress: {self.ray_progress}" if self.ray_progress else ""
            found.append(f"the Ray cluster never reported all {size} nodes active{seen}")
        if self.errors:
            found.append(f"{len(self.errors)} error line(s), first: {self.errors[0][:300]}")
        return found


def _strip_cri(line: str) -> str:
    """Logs read from a file written by the kubelet are CRI-format: `<time> stdout F <text>`."""
    parts = line.split(" ", 3)
    if len(parts) == 4 and parts[1] in ("stdout", "stderr") and parts[2] in ("F", "P"):
        return parts[3]
    return line


def gather(logs: dict[str, str]) -> Evidence:
    """Evidence from the logs of one group's pods (pod name -> log text)."""
    ev = Evidence()
    for pod, text in logs.items():
        for raw in text.splitlines():
            line = _strip_cri(raw)
            keep = False
            if m := WEIGHTS.search(line):
                size = float(m["size"]) * (1.0 if m["unit"] == "GiB" else 1e9 / 2**30)
                actor = ACTOR.search(line)
                node = actor["ip"] if actor and actor["ip"] else f"{LOCAL}:{pod}"
                rep = REPEATED.search(line)
                ev.weight_lines.append(WeightLine(pod, node, size, int(rep["n"]) if rep else 1, line))
                keep = True
            if (t := TP.search(line)) is not None:
                ev.tp.add(int(t[1]))
                keep = True
            if (p := PP.search(line)) is not None:
                ev.pp.add(int(p[1]))
            if SERVER_STARTED.search(line):
                ev.server_started = keep = True
            if RAY_READY.search(line):
                ev.ray_ready = keep = True
            if prog := RAY_PROGRESS.search(line):
                ev.ray_progress = prog[0]
            if ERRORS.search(line):
                ev.errors.append(f"{pod}: {line}")
                keep = True
            if keep and len(ev.excerpt) < 80:
                ev.excerpt.append(f"{pod}: {line}")
    return ev


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m suite.conformance.checks.log_evidence",
        description="Check saved vLLM pod logs for multi-node start-up evidence.",
    )
    parser.add_argument("logs", nargs="+", type=Path, help="log files of one group's pods (leader first)")
    parser.add_argument("--tp", type=int, required=True)
    parser.add_argument("--pp", type=int, required=True)
    parser.add_argument("--size", type=int, default=None, help="pods per group (default: number of files)")
    args = parser.parse_args(argv)
    texts = {}
    for path in args.logs:
        try:
            texts[path.name] = path.read_text(errors="replace")
        except OSError as exc:
            print(f"log_evidence: {path}: {exc.strerror}", file=sys.stderr)
            return 2
    evidence = gather(texts)
    problems = evidence.problems(tp=args.tp, pp=args.pp, size=args.size or len(args.logs))
    print(
        f"{evidence.ranks} ranks loaded weights on {len(evidence.nodes)} node(s): {', '.join(evidence.nodes)}"
    )
    for problem in problems:
        print(f"MISSING: {problem}")
    print("evidence complete" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
