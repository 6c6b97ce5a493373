"""The start-up's inputs and timeline: log events for each pod, how a line renders, the plan they add up to, and the ways a start-up ends in
failure (a Python traceback, or Ray's placement-group wait running out). Used by `startup_logs.py`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from testbed.engine.perf_model import MemoryPlan
from testbed.engine.profiles import Profile

LEADER = 0
PG_WAIT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class LogEvent:
    """One line of one pod's log. `level`/`source` set: a vLLM logger line, rendered at emission time."""

    at_s: float  # simulated seconds since the container started
    pod: int  # 0 = leader pod, k = worker pod k
    message: str
    level: str | None = None
    source: str | None = None  # "file.py:NN"
    prefix: str = ""


@dataclass(frozen=True)
class StartupInputs:
    profile: Profile
    model: str  # as given to vllm serve
    served_model_name: str
    tp: int
    pp: int
    gpus_per_node: int
    node_ips: tuple[str, ...]  # leader first; one per node present
    memory: MemoryPlan
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    weight_bytes: float
    host: str = "0.0.0.0"
    port: int = 8000
    startup_seconds: float = 30.0
    seed: int = 0
    script: str | None = None  # the launch script the pod runs before vllm serve, if any
    ray_cluster_size: int | None = None
    executor_backend: str | None = None  # --distributed-executor-backend
    nnodes: int = 1  # --nnodes (multiprocessing across nodes; workers run `vllm serve --headless`)
    non_default_args: dict[str, object] = field(default_factory=dict)
    dedup_ray_logs: bool = False


def render(event: LogEvent, profile: Profile, wall: float | None = None) -> str:
    """The line as the pod prints it; vLLM lines get the time of emission in vLLM's date format."""
    if event.level is None:
        return event.prefix + event.message
    stamp = time.strftime("%m-%d %H:%M:%S", time.gmtime(wall if wall is not None else time.time()))
    if profile.has("bracket_log_format"):
        return f"{event.prefix}{event.level} {stamp} [{event.source}] {event.message}"
    return f"{event.prefix}{event.level} {stamp} {event.source}] {event.message}"


@dataclass(frozen=True)
class StartupPlan:
    events: tuple[LogEvent, ...]
    ready_at_s: float | None  # the API server accepts requests from then on
    exit_at_s: float | None = None
    exit_code: int | None = None
    failure: str | None = None  # one line for the status / stderr

    @property
    def failed(self) -> bool:
        return self.exit_code is not None


class Timeline:
    """The lines of every pod of the group, in the order they are added; `plan` sorts them by time."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def raw(self, at: float, text: str, pod: int = LEADER, prefix: str = "") -> None:
        for line in text.split("\n"):
            self.events.append(LogEvent(at_s=at, pod=pod, message=line, prefix=prefix))

    def log(
        self, at: float, level: str, source: str, message: str, prefix: str = "", pod: int = LEADER
    ) -> None:
        for i, line in enumerate(message.split("\n")):
            if i == 0:
                self.events.append(
                    LogEvent(at_s=at, pod=pod, message=line, level=level, source=source, prefix=prefix)
                )
            else:  # continuation lines of a multi-line message carry only the process prefix
                self.events.append(LogEvent(at_s=at, pod=pod, message=line, prefix=prefix))

    def plan(self, **end: float | int | str | None) -> StartupPlan:
        return StartupPlan(events=tuple(sorted(self.events, key=lambda e: e.at_s)), **end)  # type: ignore[arg-type]

    def dedup_ray(self) -> None:
        """Ray's log deduplication: identical lines from several actors collapse into one plus a count."""
        seen: dict[str, int] = {}
        kept: list[LogEvent] = []
        for e in self.events:
            if "RayWorkerWrapper" not in e.prefix:
                kept.append(e)
                continue
            key = "".join(c for c in e.message if not c.isdigit())
            if key in seen:
                seen[key] += 1
                continue
            seen[key] = 0
            kept.append(e)
        for e in list(kept):
            key = "".join(c for c in e.message if not c.isdigit())
            if seen.get(key):
                kept.append(
                    LogEvent(
                        at_s=e.at_s + 0.5,
                        pod=e.pod,
                        message=f"{e.message} [repeated {seen[key]}x across cluster]",
                        level=e.level,
                        source=e.source,
                        prefix=e.prefix,
                    )
                )
                seen[key] = 0
        self.events = kept


def fail_traceback(tl: Timeline, t: float, prefix: str, message: str, exc: str) -> StartupPlan:
    """`vllm serve` dies with `exc: message` under a traceback through its CLI, and exits 1."""
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/usr/local/bin/vllm", line 10, in <module>\n    sys.exit(main())\n'
        '  File "/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/cli/main.py", line 54, in main\n'
        "    args.dispatch_function(args)\n"
        '  File "/usr/local/lib/python3.12/dist-packages/vllm/entrypoints/cli/serve.py", line 57, in cmd\n'
        "    uvloop.run(run_server(args))\n"
    )
    if exc.startswith("pydantic"):
        body = f"{exc}\n  Value error, {message} [type=value_error, input_value=ArgsKwargs((), {{}}), input_type=ArgsKwargs]\n    For further information visit https://errors.pydantic.dev/2.11/v/value_error"
    else:
        body = f"{exc}: {message}"
    tl.raw(t, tb + body, prefix=prefix)
    return tl.plan(ready_at_s=None, exit_at_s=t + 0.5, exit_code=1, failure=message.split("\n")[0])


def fail_placement_group(tl: Timeline, t: float, prefix: str, world: int, leader_ip: str) -> StartupPlan:
    """Ray has fewer GPUs than the world: vLLM waits for its placement group, doubling the interval, then
    gives up after PG_WAIT_TIMEOUT_S."""
    specs = [{"GPU": 1.0, f"node:{leader_ip}": 0.001}] + [{"GPU": 1.0}] * (world - 1)
    waited, interval = 0.0, 10.0
    while waited + interval <= PG_WAIT_TIMEOUT_S:
        waited += interval
        tl.log(
            t + waited,
            "INFO",
            "ray_utils.py:285",
            f"Waiting for creating a placement group of specs for {int(waited)} seconds. specs={specs}. Check `ray status` "
            "and `ray list nodes` to see if you have enough resources, and make sure the IP addresses used by ray "
            "cluster are the same as VLLM_HOST_IP environment variable specified in each node if you are running on a multi-node.",
            prefix,
        )
        interval *= 2
    message = (
        f"Cannot provide a placement group of placement_group_specs={specs} within {int(PG_WAIT_TIMEOUT_S)} seconds. "
        "See `ray status` and `ray list nodes` to make sure the cluster has enough resources."
    )
    return fail_traceback(tl, t + PG_WAIT_TIMEOUT_S, prefix, message, "ValueError")
