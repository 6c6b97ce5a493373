"""The kubelet for pods of the suite's own image (suite_image.py): each runs its container as a process from
this checkout, as a Job or CronJob of the suite runs on a cluster.

- **User and files**: the pod's user id (securityContext, else the image's 65532), no home directory
  (HOME=/, as a runtime sets it for a user the image's passwd lacks), the checkout read-only, emptyDir
  volumes, `readOnlyRootFilesystem`: suite_sandbox.py, inside the pod's own mount namespace.
- **ServiceAccount**: a token for the pod's ServiceAccount (TokenRequest, bound to the pod, as the kubelet
  asks for it), the testbed's CA and the namespace at `/var/run/secrets/kubernetes.io/serviceaccount/`, seen by
  this pod only; `KUBERNETES_SERVICE_HOST`/`PORT` name the API server, so in-cluster config works unchanged.
- **Network**: a network namespace of its own with only loopback. Inside it a Service proxy
  (service_proxy.py) listens on the API server's address and port (127.0.0.1) and on an address per Service
  (127.96.x.y, the ClusterIP's stand-in) that the pod's /etc/hosts gives its DNS names (`<svc>.<ns>.svc`,
  `.svc.cluster.local`, ...), balancing each connection over the Service's ready endpoints (EndpointSlices),
  which the testbed serves on the host's loopback. Nothing listens on a real interface, nor on the host.
- **Logs and lifecycle**: stdout/stderr to a CRI log file (`kubectl logs`); KWOK leaves these pods'
  completion to the bridge (testbed/stages.py), which reports the container's exit as a kubelet does (phase
  Succeeded/Failed under `restartPolicy: Never`); deletion stops every process of the pod's network namespace.
- **Image pull**: nox's environments of the image (`nox --install-only -s conformance benchmark report`) are
  made in the checkout the first time such a pod is seen, as an image is pulled; the pod waits meanwhile.

Needs root (namespaces, mounts, user ids); without it these pods are left to KWOK and a warning says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from kubernetes import client
from kubernetes.client.rest import ApiException

from testbed.bridge import suite_image
from testbed.bridge.kwok_rules import KwokRules, logs_object
from testbed.bridge.local_pod_spec import LocalPod, terminated_status
from testbed.bridge.local_pods import start_logged
from testbed.engine.logsink import cri_timestamp

log = logging.getLogger("bridge.suite-pods")
TICK_S = 0.5
CHECKOUT = Path(__file__).resolve().parents[2]
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LocalPort = Callable[[str, str, int], int | None]


@dataclass
class _Pod:
    raw: dict[str, Any]
    netns: str
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    proxy: subprocess.Popen[bytes] | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    exit_reported: bool = False
    table: str = ""
    hosts: str = ""

    @property
    def namespace(self) -> str:
        return str(self.raw["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.raw["metadata"]["name"])


def netns_of(pod_uid: str) -> str:
    return "lws-sp-" + hashlib.sha1(pod_uid.encode()).hexdigest()[:10]


class SuitePods:
    def __init__(self, api: client.ApiClient, state_dir: Path, local_port: LocalPort) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._discovery = client.DiscoveryV1Api(api)
        self._rules = KwokRules(api)
        self._state_dir = state_dir
        self._local_port = local_port
        self._pods: dict[str, _Pod] = {}  # by pod uid
        self._failed: set[str] = set()
        self._addresses: dict[tuple[str, str], str] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._pulled = threading.Event()
        self._pulling = False
        self._started = False
        server = urlparse(api.configuration.host)
        self._api_port = server.port or 443

    def start(self) -> None:
        """Start the sync loop (once; later calls, after a relist, do nothing)."""
        if self._started:
            return
        self._started = True
        if os.geteuid() != 0:
            log.warning("not root: pods of the suite's image are left to KWOK (they do not run)")
            return
        threading.Thread(target=self._loop, name="suite-pods", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for pod in self._pods.values():
                self._teardown(pod)
            self._pods.clear()

    # the loop ---------------------------------------------------------------------------------------
    def _loop(self) -> None:
        """Like a kubelet's sync loop: list the pods, start and stop, report exits, refresh the Service
        tables of the running ones. A failed pass is logged and the next one tries again."""
        while not self._stop.wait(TICK_S):
            try:
                self._tick()
            except Exception:
                log.exception("suite pods: sync failed; trying again")

    def _tick(self) -> None:
        raw_pods = _items(self._core.list_pod_for_all_namespaces(_preload_content=False))
        mine = {
            p["metadata"]["uid"]: p
            for p in raw_pods
            if (p.get("spec") or {}).get("containers")
            and suite_image.is_suite_image(p["spec"]["containers"][0].get("image", ""))
        }
        with self._lock:
            live = {uid: p for uid, p in mine.items() if p["metadata"].get("deletionTimestamp") is None}
            for uid in [uid for uid in self._pods if uid not in live]:
                self._teardown(self._pods.pop(uid))
            for uid, raw in live.items():
                if uid in self._pods or uid in self._failed:
                    continue
                if (raw.get("status") or {}).get("phase") != "Running":
                    continue
                if not self._image_pulled():
                    continue
                self._start(uid, raw)
            for pod in self._pods.values():
                if pod.proc is not None and not pod.exit_reported and pod.proc.poll() is not None:
                    self._report_exit(pod, pod.proc.returncode)
            if any(p.proc is not None and p.proc.poll() is None for p in self._pods.values()):
                self._refresh_services()

    # image pull -------------------------------------------------------------------------------------
    def _image_pulled(self) -> bool:
        if self._pulled.is_set():
            return True
        if all((CHECKOUT / ".nox" / s / "pyvenv.cfg").exists() for s in suite_image.SESSIONS):
            self._pulled.set()
            return True
        if not self._pulling:
            self._pulling = True
            threading.Thread(target=self._pull, name="suite-image-pull", daemon=True).start()
        return False

    def _pull(self) -> None:
        argv = [_nox(), "--install-only", "-s", *suite_image.SESSIONS]
        log.info("making the suite image's environments: %s (in %s)", " ".join(argv), CHECKOUT)
        done = subprocess.run(argv, cwd=CHECKOUT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log.warning("`%s` failed (%d): %s", " ".join(argv), done.returncode, done.stderr[-2000:])
            self._pulling = False  # tried again on the next tick, as a kubelet retries a pull
            return
        self._pulled.set()

    # starting ---------------------------------------------------------------------------------------
    def _start(self, uid: str, raw: dict[str, Any]) -> None:
        meta = raw["metadata"]
        pod = _Pod(raw, netns_of(uid), self._state_dir / meta["namespace"] / meta["name"] / uid)
        self._pods[uid] = pod
        container = raw["spec"]["containers"][0]
        try:
            who = suite_image.identity(raw, container)
            mounts = suite_image.volume_mounts(raw, container)
            sa_dir = (
                self._service_account(pod, who)
                if raw["spec"].get("automountServiceAccountToken", True)
                else None
            )
        except suite_image.NotRunnable as exc:
            log.warning("pod %s/%s cannot run: %s", pod.namespace, pod.name, exc)
            self._failed.add(uid)
            self._fail(pod, str(exc))
            return
        except (
            ApiException
        ) as exc:  # e.g. its ServiceAccount not there yet: tried again next pass, as a kubelet does
            log.warning(
                "pod %s/%s: no token yet (%s %s); trying again",
                pod.namespace,
                pod.name,
                exc.status,
                exc.reason,
            )
            del self._pods[uid]
            return
        try:
            self._launch(pod, container, who, mounts, sa_dir)
        except Exception:  # the sandbox could not be made: undone, and tried again next pass
            log.exception("pod %s/%s: cannot start; trying again", pod.namespace, pod.name)
            self._teardown(self._pods.pop(uid))

    def _launch(
        self,
        pod: _Pod,
        container: dict[str, Any],
        who: suite_image.Identity,
        mounts: list[tuple[str, str, bool]],
        sa_dir: Path | None,
    ) -> None:
        self._network(pod)
        binds: list[tuple[str, str, bool]] = [(str(CHECKOUT), str(CHECKOUT), True)]
        binds += [(p, p, True) for p in image_prefixes()]
        for name, mount_path, read_only in mounts:
            volume = pod.directory / "volumes" / name
            volume.mkdir(parents=True, exist_ok=True)
            os.chmod(volume, 0o777)  # an emptyDir is world-writable, as the kubelet makes it
            binds.append((str(volume), mount_path, read_only))
        env = self._environment(pod, container)
        spec = {
            "binds": binds,
            "service_account": str(sa_dir) if sa_dir else None,
            "read_only_root": who.read_only_root,
            "cwd": container.get("workingDir") or str(CHECKOUT),
            "uid": who.uid,
            "gid": who.gid,
            "argv": suite_image.argv_of(container, env),
            "env": env,
        }
        spec_file = pod.directory / "sandbox.json"
        spec_file.write_text(json.dumps(spec))
        os.chmod(spec_file, 0o600)
        log_file = pod.directory / "container.log"
        log_file.touch()
        argv = [
            "ip",
            "netns",
            "exec",
            pod.netns,
            sys.executable,
            "-m",
            "testbed.bridge.suite_sandbox",
            str(spec_file),
        ]
        log.info(
            "pod %s/%s (uid %d, netns %s): %s", pod.namespace, pod.name, who.uid, pod.netns, spec["argv"]
        )
        pod.proc, pod.threads = start_logged(argv, cwd=CHECKOUT, env={"PATH": SYSTEM_PATH}, log_file=log_file)
        self._rules.apply(logs_object(pod.namespace, pod.name, log_file, None))

    def _service_account(self, pod: _Pod, who: suite_image.Identity) -> Path:
        spec = pod.raw["spec"]
        account = spec.get("serviceAccountName") or "default"
        body = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[],  # the API server's own audience
                expiration_seconds=3607,  # the kubelet's default for projected tokens
                bound_object_ref=client.V1BoundObjectReference(
                    kind="Pod", api_version="v1", name=pod.name, uid=pod.raw["metadata"]["uid"]
                ),
            )
        )
        answer = self._core.create_namespaced_service_account_token(account, pod.namespace, body)
        token = str(answer.status.token) if answer.status is not None else ""
        directory = pod.directory / "serviceaccount"
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o755)
        ca = (
            Path(self._api.configuration.ssl_ca_cert).read_text()
            if self._api.configuration.ssl_ca_cert
            else ""
        )
        for name, text, mode in (
            ("token", token, 0o600),
            ("ca.crt", ca, 0o644),
            ("namespace", pod.namespace, 0o644),
        ):
            path = directory / name
            path.write_text(text)
            os.chown(path, who.uid, who.gid)
            os.chmod(path, mode)
        return directory

    def _network(self, pod: _Pod) -> None:
        for argv in (
            ["ip", "netns", "add", pod.netns],
            ["ip", "netns", "exec", pod.netns, "ip", "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        etc = Path("/etc/netns") / pod.netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("# testbed: no DNS server; the Services are in /etc/hosts\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n")
        pod.proxy = subprocess.Popen(
            [sys.executable, "-m", "testbed.bridge.service_proxy", "--netns", pod.netns],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._refresh_services(only=pod)

    def _environment(self, pod: _Pod, container: dict[str, Any]) -> dict[str, str]:
        prefixes = image_prefixes()
        image_env = {
            "PATH": ":".join([*(f"{p}/bin" for p in prefixes), SYSTEM_PATH]),
            "HOME": "/",
            "HOSTNAME": pod.name,
            "LWS_SUITE_REVISION": _revision(),
            **suite_image.IMAGE_ENV,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self._api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self._api_port),
        }
        fields = {
            "metadata.name": pod.name,
            "metadata.namespace": pod.namespace,
            "metadata.uid": pod.raw["metadata"]["uid"],
            "spec.nodeName": pod.raw["spec"].get("nodeName") or "",
            "spec.serviceAccountName": pod.raw["spec"].get("serviceAccountName") or "default",
        }
        env = dict(image_env)
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = suite_image.expand_kubelet_vars(str(item["value"]), env)
            elif (ref := (item.get("valueFrom") or {}).get("fieldRef")) and ref.get("fieldPath") in fields:
                env[item["name"]] = fields[ref["fieldPath"]]
        return env

    # Services ---------------------------------------------------------------------------------------
    def _refresh_services(self, only: _Pod | None = None) -> None:
        services = _items(self._core.list_service_for_all_namespaces(_preload_content=False))
        slices = _items(self._discovery.list_endpoint_slice_for_all_namespaces(_preload_content=False))
        for svc in services:
            key = (svc["metadata"]["namespace"], svc["metadata"]["name"])
            cluster_ip = (svc.get("spec") or {}).get("clusterIP")
            if (
                key != ("default", "kubernetes")
                and cluster_ip
                and cluster_ip != "None"
                and key not in self._addresses
            ):
                self._addresses[key] = suite_image.service_address(len(self._addresses))
        table = suite_image.listeners(services, slices, self._addresses, self._local_port)
        table.append(
            {"address": "127.0.0.1", "port": self._api_port, "backends": [["127.0.0.1", self._api_port]]}
        )
        for pod in [only] if only is not None else list(self._pods.values()):
            if pod.proxy is None or pod.proxy.poll() is not None:
                continue
            hosts = suite_image.hosts_file(self._addresses, pod.namespace)
            if hosts != pod.hosts:
                with (Path("/etc/netns") / pod.netns / "hosts").open(
                    "r+"
                ) as handle:  # in place: the bind follows the inode
                    handle.truncate()
                    handle.write(hosts)
                pod.hosts = hosts
            text = json.dumps(table, sort_keys=True)
            if text != pod.table:
                assert pod.proxy.stdin is not None and pod.proxy.stdout is not None
                pod.proxy.stdin.write(text.encode() + b"\n")
                pod.proxy.stdin.flush()
                pod.proxy.stdout.readline()  # "ready": listening before the pod dials
                pod.table = text

    # ending -----------------------------------------------------------------------------------------
    def _report_exit(self, pod: _Pod, code: int) -> None:
        pod.exit_reported = True
        log.info("pod %s/%s exited with code %d", pod.namespace, pod.name, code)
        self._kill_namespace(pod)  # the container is gone: nothing it started outlives it
        self._patch_terminated(pod, code)

    def _fail(self, pod: _Pod, why: str) -> None:
        pod.directory.mkdir(parents=True, exist_ok=True)
        log_file = pod.directory / "container.log"
        with log_file.open("a") as handle:
            handle.write(f"{cri_timestamp()} stderr F testbed: {why}\n")
        self._rules.apply(logs_object(pod.namespace, pod.name, log_file, None))
        pod.exit_reported = True
        self._patch_terminated(pod, 128)

    def _patch_terminated(self, pod: _Pod, code: int) -> None:
        spec = pod.raw["spec"]
        view = LocalPod(
            pod.namespace, pod.name, pod.raw["metadata"]["uid"], "Running", False, False,
            spec.get("restartPolicy") or "Always", 0.0, spec.get("nodeName"), spec["containers"][0], (), (),
        )  # fmt: skip
        status = terminated_status(view, code, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        try:
            self._core.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": status})
        except ApiException as exc:
            if exc.status != 404:
                log.warning("pod %s/%s: cannot report the exit: %s", pod.namespace, pod.name, exc.reason)

    def _kill_namespace(self, pod: _Pod) -> None:
        done = subprocess.run(["ip", "netns", "pids", pod.netns], capture_output=True, text=True, check=False)
        for pid in (int(p) for p in done.stdout.split() if p.isdigit()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _teardown(self, pod: _Pod) -> None:
        grace = min(float(pod.raw["spec"].get("terminationGracePeriodSeconds") or 30), 10.0)
        if pod.proc is not None and pod.proc.poll() is None:
            self._signal_namespace(pod, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                pod.proc.wait(timeout=grace)
        self._kill_namespace(pod)
        if pod.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                pod.proc.wait(timeout=5)
        for thread in pod.threads:
            thread.join(timeout=5)
        if pod.proxy is not None:
            _close(pod.proxy.stdin)
            pod.proxy.kill()
            pod.proxy.wait(timeout=5)
        subprocess.run(["ip", "netns", "delete", pod.netns], capture_output=True, check=False)
        shutil.rmtree(Path("/etc/netns") / pod.netns, ignore_errors=True)

    def _signal_namespace(self, pod: _Pod, sig: signal.Signals) -> None:
        done = subprocess.run(["ip", "netns", "pids", pod.netns], capture_output=True, text=True, check=False)
        for pid in (int(p) for p in done.stdout.split() if p.isdigit()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _items(response: Any) -> list[dict[str, Any]]:
    """A list's items as plain JSON (the client's models cost far more to build, on every tick)."""
    return list(json.loads(response.data)["items"])


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        with contextlib.suppress(OSError):
            stream.close()


def _nox() -> str:
    """The nox that comes with the testbed's Python (the image installs nox into its Python too)."""
    beside = Path(sys.base_prefix) / "bin" / "nox"
    return str(beside) if beside.exists() else shutil.which("nox") or "nox"


def image_prefixes() -> list[str]:
    """The installation prefixes the image's programs come from: the testbed's Python, and nox's."""
    prefixes = [str(Path(sys.base_prefix).resolve())]
    nox = Path(_nox()).resolve()
    if nox.exists() and str(nox.parent.parent) not in prefixes:
        prefixes.append(str(nox.parent.parent))
    return prefixes


def _revision() -> str:
    done = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"
