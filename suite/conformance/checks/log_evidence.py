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
- rank assignment (vLLM 0.11 and newer, GPU and CPU builds alike): `rank R in world size W is assigned as
  DP rank 0, PP rank p, ... TP rank t`, one line per rank in the log of the node that runs it (behind an
  `ip=` prefix when a Ray actor on another node printed it). When present, ranks are counted from these
  lines; the CPU build prints no per-rank weight size at all (only `Loading weights took X seconds`);
- vLLM's own multi-node launch (`--distributed-executor-backend mp --nnodes N`): every node logs its own
  ranks; the leader's engine logs `DP group leader: node_rank=0, ... master_addr=A, ... world_size=W`.

Every node a rank is attributed to must be a pod of this group: a rank with `ip=A` belongs to the pod whose
IP (or whose node's address) is A, a rank without `ip=` to the pod whose log holds it. An address that is
no pod of the group is named and fails the check: a phantom node is not evidence.

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
RANK = re.compile(
    r"rank (?P<rank>\d+) in world size (?P<world>\d+) is assigned as .*?PP rank (?P<pp>\d+).*?TP rank (?P<tp>\d+)"
)
MP_LEADER = re.compile(
    r"DP group leader: node_rank=0,.*?master_addr=(?P<addr>[^,\s]+).*?world_size=(?P<world>\d+)"
    r"(?:, local_world_size=(?P<local>\d+))?"
)
# What an engine that lacks nodes or GPUs prints while it waits (it never serves): Ray's placement group, or
# the mp launch's wait for the other nodes to join.
STARVED = re.compile(r"Waiting for creating a placement group of specs for \d+ seconds|waiting for clients")
RAY_PROGRESS = re.compile(r"Wait for all ray workers to be active\. (\d+)/(\d+) is active")
ERRORS = re.compile(
    r"Traceback \(most recent call last\)|NCCL error|ncclInternalError|RuntimeError|"
    r"Error: Missing argument|timed out\.$|No such file or directory"
)
# The line a Python traceback ends with, which says what went wrong (`ValueError: Invalid data-parallel ...`).
EXCEPTION = re.compile(r"^(?:\(\w+ pid=\d+\) )?(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception): ")
LOCAL = "local"  # ranks without ip=: on the node of the pod whose log holds the line


@dataclass(frozen=True)
class WeightLine:
    pod: str
    node: str  # the actor's ip, or "local:<pod>"
    size_gib: float
    count: int  # 1, or N for a "[repeated Nx across cluster]" line
    line: str


@dataclass(frozen=True)
class RankLine:
    pod: str  # the pod the rank runs in (attributed), or "unknown:<ip>"
    rank: int
    world: int
    line: str


@dataclass
class Evidence:
    weight_lines: list[WeightLine] = field(default_factory=list)
    rank_lines: list[RankLine] = field(default_factory=list)
    mp_leader: str | None = None  # the master address the mp launch's leader logged
    mp_nodes: int | None = None  # the nodes the mp launch's leader waits for: world_size / local_world_size
    unknown_addresses: set[str] = field(default_factory=set)
    tp: set[int] = field(default_factory=set)
    pp: set[int] = field(default_factory=set)
    server_started: bool = False
    ray_ready: bool = False
    ray_progress: str | None = None
    errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)  # the lines tracebacks end with
    starved: str | None = None  # the last line of an engine waiting for resources the group lacks
    excerpt: list[str] = field(default_factory=list)

    @property
    def ranks(self) -> int:
        if self.rank_lines:
            return len({r.rank for r in self.rank_lines})
        return sum(w.count for w in self.weight_lines)

    @property
    def nodes(self) -> list[str]:
        if self.rank_lines:
            return sorted({r.pod for r in self.rank_lines})
        return sorted({w.node for w in self.weight_lines})

    @property
    def launch(self) -> str:
        return "mp" if self.mp_leader is not None else "ray"

    def problems(self, *, tp: int, pp: int, size: int) -> list[str]:
        found = []
        world = tp * pp
        if self.unknown_addresses:
            found.append(
                f"ranks attributed to address(es) {sorted(self.unknown_addresses)} that are no pod of this group "
                "(neither a pod IP nor its node's address): a node the group does not have"
            )
        if self.rank_lines:
            worlds = {r.world for r in self.rank_lines}
            if worlds != {world}:
                found.append(
                    f"ranks report world size {sorted(worlds)}, expected TP {tp} x PP {pp} = {world}"
                )
            duplicated = sorted(
                {r.rank for r in self.rank_lines if sum(x.rank == r.rank for x in self.rank_lines) > 1}
            )
            if duplicated:
                found.append(f"rank(s) {duplicated} assigned more than once")
        if self.ranks != world:
            hint = (
                " Ray may have deduplicated the lines; set RAY_DEDUP_LOGS=0 in the pod env"
                if 0 < self.ranks < world and self.launch == "ray"
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
        if self.mp_nodes is not None and not self.server_started and len(self.nodes) < self.mp_nodes:
            found.append(
                f"the mp launch's leader waits for {self.mp_nodes} nodes (world size / ranks per node), but ranks "
                f"were seen on {len(self.nodes)} pod(s) {self.nodes}: the group has fewer nodes than --nnodes says"
            )
        if self.starved is not None and not self.server_started:
            found.append(f"the engine waits for nodes or GPUs the group does not have: {self.starved[:300]}")
        if not self.server_started:
            found.append("no server-start line (Application startup complete / Starting vLLM API server)")
        if size > 1 and self.launch == "ray" and not self.ray_ready:
            seen = f"; last progress: {self.ray_progress}" if self.ray_progress else ""
            found.append(f"the Ray cluster never reported all {size} nodes active{seen}")
        if self.errors:
            raised = self.exceptions[0] if self.exceptions else None
            ending = f"; raised: {raised[:300]}" if raised and raised != self.errors[0] else ""
            found.append(f"{len(self.errors)} error line(s), first: {self.errors[0][:300]}{ending}")
        return found


def _strip_cri(line: str) -> str:
    """Logs read from a file written by the kubelet are CRI-format: `<time> stdout F <text>`."""
    parts = line.split(" ", 3)
    if len(parts) == 4 and parts[1] in ("stdout", "stderr") and parts[2] in ("F", "P"):
        return parts[3]
    return line


def _actor_ip(line: str) -> str | None:
    """The `ip=` of the Ray actor that printed the line, if it names one (actors on the driver's node do not)."""
    actor = ACTOR.search(line)
    return actor["ip"] if actor and actor["ip"] else None


def gather(logs: dict[str, str], addresses: dict[str, str] | None = None) -> Evidence:
    """Evidence from the logs of one group's pods (pod name -> log text). `addresses` maps each address a
    pod of the group has (its pod IP, its node's address) to the pod's name; a rank behind an `ip=` that is
    not among them is counted under `unknown:<ip>` and named by `problems()`. Without `addresses` (saved
    logs read offline) every `ip=` is taken as a node of its own."""
    ev = Evidence()

    def owner(pod: str, ip: str | None) -> str:
        if ip is None:
            return pod
        if addresses is None:
            return ip
        if ip in addresses:
            return addresses[ip]
        ev.unknown_addresses.add(ip)
        return f"unknown:{ip}"

    for pod, text in logs.items():
        for raw in text.splitlines():
            line = _strip_cri(raw)
            keep = False
            if m := WEIGHTS.search(line):
                size = float(m["size"]) * (1.0 if m["unit"] == "GiB" else 1e9 / 2**30)
                ip = _actor_ip(line)
                node = owner(pod, ip) if ip is not None else f"{LOCAL}:{pod}"
                rep = REPEATED.search(line)
                ev.weight_lines.append(WeightLine(pod, node, size, int(rep["n"]) if rep else 1, line))
                keep = True
            if r := RANK.search(line):
                ev.rank_lines.append(
                    RankLine(owner(pod, _actor_ip(line)), int(r["rank"]), int(r["world"]), line)
                )
                keep = True
            if m := MP_LEADER.search(line):
                ev.mp_leader = m["addr"]
                if m["local"]:
                    ev.mp_nodes = int(m["world"]) // max(1, int(m["local"]))
                owner(pod, m["addr"])  # the master must be a pod of the group too
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
            if STARVED.search(line):
                ev.starved = line
                keep = keep or len(ev.excerpt) < 40  # the wait repeats: keep its first lines only
            if prog := RAY_PROGRESS.search(line):
                ev.ray_progress = prog[0]
            if ERRORS.search(line):
                ev.errors.append(f"{pod}: {line}")
                keep = True
            if EXCEPTION.search(line):
                ev.exceptions.append(f"{pod}: {line}")
                keep = True
            if keep and len(ev.excerpt) < 80:
                ev.excerpt.append(f"{pod}: {line}")
    return ev


def not_started(logs: dict[str, str], leader: str) -> list[str]:
    """The pods of a group that have not logged their start yet, each with what is missing: the leader until its
    server started or its start-up ended in a traceback (it will not serve; judge it now), a worker until its
    log has a line. Log evidence judges only once this is empty: a pod Ready before its engine started (no
    readiness probe) has not logged its start-up yet, and judging then fails a deployment that is only slow."""
    missing = []
    for pod, text in logs.items():
        if pod == leader:
            ev = gather({pod: text})
            if not (ev.server_started or ev.exceptions or any("Traceback" in e for e in ev.errors)):
                missing.append(f"{pod}: no server-start line yet")
        elif not text.strip():
            missing.append(f"{pod}: nothing logged yet")
    return missing


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
