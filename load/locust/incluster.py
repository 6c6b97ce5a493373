"""In-cluster Locust: the master and workers run as pods next to vLLM and send load to the Service's DNS
name; the suite starts them, waits for the run, copies the raw records back, and deletes them.

1. Render load/locust/manifests.py (ConfigMap with load/locust/locustfile.py and its helpers, ``SHIPPED_FILES``;
   master Pod and Service, worker Deployment) under a fresh name ``locust-<6 hex>`` and ``kubectl apply`` them.
2. Wait for the master pod to run, then ``kubectl port-forward svc/<name>-master :8089`` (control only:
   the load goes from the worker pods to ``http://<service>.<namespace>.svc:<port>``), restarted if it
   drops (kubectl gives up when a connection fails, e.g. before the UI listens).
3. Poll the master's ``/lws-suite/status`` until its test has stopped and every connected worker has sent
   its last batch of records (workers send them to the master as Locust messages).
4. Read ``/lws-suite/records`` (JSON lines, load/locust/locust_stream.py), save it and the master's
   ``kubectl logs`` in the raw directory, and delete the objects (unless ``keep``).

Why HTTP through a port-forward rather than ``kubectl logs`` or ``kubectl cp``: a kubelet rotates
container logs at 10 MiB by default, so a long run's records would be cut; ``kubectl cp`` needs ``tar`` in
the image and a pod that is still running. The port-forward works the same on any cluster and on the
embedded testbed, where the bridge runs these pods as local processes (testbed/bridge/local_pods.py)
and KWOK forwards the port to the master's local web port.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.locust.kubectl import ClusterError, Kubectl
from load.locust.manifests import LOCUST_IMAGE, WEB_PORT, LocustSpec, render
from load.locust.merge import RawRun, parse_raw_lines
from load.locust.options import LocustRunConfig
from plumbing.port_forward import PortForward, PortForwardError
from plumbing.wait import NotYet, wait_for

# The locustfile and its helpers, all it imports besides Locust (docstring of load/locust/locustfile.py).
SHIPPED_FILES = ("locustfile.py", "locust_stream.py", "locust_options.py", "locust_collect.py")
STARTUP_ALLOWANCE_S = 300.0  # scheduling, image pull, workers connecting
COLLECT_TIMEOUT_S = 120.0
UI_TIMEOUT_S = 120.0  # from the master pod running to its web UI answering


@dataclass
class InClusterRun:
    name: str
    raw: RawRun
    status: dict[str, Any]


def shipped_files() -> dict[str, str]:
    here = Path(__file__).parent
    return {name: (here / name).read_text(encoding="utf-8") for name in SHIPPED_FILES}


def locust_spec(config: LocustRunConfig, model: str, name: str) -> LocustSpec:
    cluster = config.cluster
    assert cluster is not None, "in-cluster runs target a Service"
    return LocustSpec(
        namespace=cluster.namespace,
        name=name,
        image=config.image or LOCUST_IMAGE,
        target_url=cluster.in_cluster_url,
        workers=config.workers,
        users=config.users,
        spawn_rate=config.spawn_rate,
        run_time=config.run_time,
        stop_timeout=config.stop_timeout_s,
        locust_args=(*config.locustfile_args(model), *config.locust_args),
        files=shipped_files(),
    )


def new_name() -> str:
    return f"locust-{uuid.uuid4().hex[:6]}"


def run_in_cluster(
    config: LocustRunConfig, kubectl: Kubectl, model: str, raw_dir: Path, say: Callable[[str], None]
) -> InClusterRun:
    cluster = config.cluster
    assert cluster is not None
    namespace, name = cluster.namespace, new_name()
    objects = render(locust_spec(config, model, name))
    kubectl.apply(objects)
    say(
        f"started in-cluster Locust {name} in namespace {namespace}: 1 master, {config.workers} worker(s), "
        f"target {cluster.in_cluster_url}"
    )
    try:
        wait_for(
            lambda: _master_running(kubectl, namespace, name),
            what=f"pod {name}-master to run",
            timeout=STARTUP_ALLOWANCE_S,
            interval=0.5,
        )
        forward = PortForward(kubectl.argv(), namespace, f"svc/{name}-master", WEB_PORT, ready_timeout=60)
        try:
            seen: list[str] = []
            wait_for(
                lambda: _status(forward, kubectl, namespace, name),
                what=f"the web UI of {name}-master to answer",
                timeout=UI_TIMEOUT_S,
                interval=1.0,
            )
            if config.web:
                say(f"Locust web UI: {forward.url()} (through kubectl port-forward, while the run lasts)")
            budget = STARTUP_ALLOWANCE_S + config.run_time_s + config.stop_timeout_s + COLLECT_TIMEOUT_S
            status = wait_for(
                lambda: _finished(forward, kubectl, namespace, name, seen, say),
                what=f"the Locust run {name} to finish",
                timeout=budget,
                interval=1.0,
            )
            records = _get(forward.url() + "/lws-suite/records", timeout=COLLECT_TIMEOUT_S)
        finally:
            forward.close()
        raw_dir.mkdir(parents=True, exist_ok=True)
        (raw_dir / "collected.jsonl").write_bytes(records)
        (raw_dir / "master.log").write_text(_logs(kubectl, namespace, name))
        lines = records.decode("utf-8").splitlines()
        raw = parse_raw_lines(
            (f"{name}-master:/lws-suite/records:{n}", line) for n, line in enumerate(lines, 1)
        )
        return InClusterRun(name, raw, status)
    finally:
        if config.keep:
            say(f"kept the Locust objects ({name}-*) in namespace {namespace} (--keep)")
        else:
            kubectl.delete(objects)


def _master_running(kubectl: Kubectl, namespace: str, name: str) -> None:
    pod = kubectl.get("pod", f"{name}-master", namespace)
    if pod is None:
        raise NotYet("the pod does not exist yet")
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise ClusterError(
            f"Locust master {name}-master exited ({phase}): {_tail(_logs(kubectl, namespace, name))}"
        )
    if phase != "Running":
        waiting = [
            (s.get("state", {}).get("waiting") or {}).get("reason")
            for s in pod.get("status", {}).get("containerStatuses") or []
        ]
        raise NotYet(f"phase {phase}" + (f", {', '.join(filter(None, waiting))}" if any(waiting) else ""))


def _status(forward: PortForward, kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    try:
        return dict(json.loads(_get(forward.url() + "/lws-suite/status", timeout=10)))
    except (OSError, ValueError, PortForwardError) as exc:
        _master_running(kubectl, namespace, name)  # raises if the master is gone
        raise NotYet(f"the master's /lws-suite/status does not answer ({exc})") from None


def _finished(
    forward: PortForward,
    kubectl: Kubectl,
    namespace: str,
    name: str,
    seen: list[str],
    say: Callable[[str], None],
) -> dict[str, Any]:
    status = _status(forward, kubectl, namespace, name)
    phase = f"Locust {status['state']}: {len(status['workers'])} worker(s) in the test, {len(status['final_from'])} done"
    line = f"{phase}, {status['records']} requests recorded"
    if not seen or seen[-1] != phase:  # say each phase once, not every poll
        seen.append(phase)
        say(line)
    if not status["done"]:
        raise NotYet(
            line + (f"; waiting for {', '.join(status['missing'])}" if status.get("missing") else "")
        )
    return status


def _get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise OSError(f"HTTP {exc.code} from {url}") from None


def _logs(kubectl: Kubectl, namespace: str, name: str) -> str:
    try:
        return kubectl.run("logs", f"pod/{name}-master", namespace=namespace)
    except ClusterError as exc:
        return f"(no log: {exc})"


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
