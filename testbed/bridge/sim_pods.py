"""The pod sandboxes of the simulator testbed (`--engine sim`), so that a crash reaches a pod the way it
does on a node: through `kubectl exec POD -- kill ...`, never by editing the pod's status from outside.

The simulator serves a whole LWS group from one process, started for the leader pod (engine_process.py).
Here every pod of a group gets what a container would give it (as root; see podnet.py for why):
- its own user id, under which the leader's simulator runs (run.py passes `uid_of(leader)` to the launcher)
  (until the group is complete and the simulator starts, the leader runs a stand-in too)
  and under which each worker pod runs a stand-in process (`sleep infinity`: the worker's container, whose
  own log lines the simulator writes);
- a KWOK `Exec` rule that runs `kubectl exec` commands as that user id, so a crash command in the worker
  (fixtures/faults.py) kills its stand-in, and in the leader the simulator, and nothing else on the machine;
- a kubelet's report when the process dies (container_status.py): restartCount + 1, and LWS decides.
Not root: no sandboxes and no Exec rules; `kubectl exec` into a pod then fails with KWOK's "no exec found".
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

from kubernetes import client

from testbed.bridge.container_status import report_death
from testbed.bridge.kwok_rules import KwokRules, exec_object
from testbed.bridge.pod_uids import Addresses
from testbed.bridge.podnet import kill_all_of, sandbox_prefix
from testbed.bridge.pods import PodView, stop_gone

log = logging.getLogger("bridge.sim-pods")


@dataclass
class Standin:
    pod: PodView
    incarnation: int
    uid: int
    proc: subprocess.Popen[bytes]
    exit_reported: bool = False


class SimSandboxes:
    def __init__(self, api: client.ApiClient, rules: KwokRules, addresses: Addresses) -> None:
        self._core = client.CoreV1Api(api)
        self._rules = rules
        self._addresses = addresses
        self._standins: dict[str, Standin] = {}  # worker pod uid -> its container's stand-in

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0

    def uid_of(self, pod: PodView) -> int:
        uid = self._addresses.of(pod.uid)[1]
        self._rules.apply(exec_object(pod.namespace, pod.name, uid))
        return uid

    def reconcile(self, pods: dict[str, PodView], engine_leaders: frozenset[str] = frozenset()) -> None:
        """Stand-ins for running worker pods, and for running leaders whose group has no engine yet
        (`engine_leaders`: uids of leaders an engine runs for): on a node the leader's container runs its command
        whether or not its workers are scheduled, so it can crash (and restart) while a worker is Pending."""
        stop_gone(self._standins, pods, self._stop)
        for pod in pods.values():
            if (pod.is_leader and pod.uid in engine_leaders) or not pod.running or pod.container is None:
                continue
            current = self._standins.get(pod.uid)
            if current is not None and (
                current.proc.poll() is None or current.incarnation >= pod.restart_count
            ):
                continue
            if current is not None:
                self._stop(current)
            user = self.uid_of(pod)
            proc = subprocess.Popen(
                [*sandbox_prefix(user), "sleep", "infinity"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._standins[pod.uid] = Standin(pod, pod.restart_count, user, proc)

    def retire(self, pod_uid: str) -> None:
        """The engine takes over a leader's container: end its stand-in, which did not die (nothing reported).
        Only the stand-in's own process is ended: the engine about to start runs under the same user id."""
        standin = self._standins.pop(pod_uid, None)
        if standin is None:
            return
        standin.exit_reported = True
        standin.proc.kill()
        standin.proc.wait(timeout=10)

    def poll(self) -> None:
        for standin in self._standins.values():
            if standin.proc.poll() is not None and not standin.exit_reported:
                standin.exit_reported = True
                report_death(
                    self._core, standin.pod, standin.incarnation, standin.proc.returncode, standin.uid
                )

    def report_engine_death(self, leader: PodView, incarnation: int, returncode: int, uid: int) -> None:
        report_death(self._core, leader, incarnation, returncode, uid)

    def stop_all(self) -> None:
        for standin in self._standins.values():
            self._stop(standin)
        self._standins.clear()

    @staticmethod
    def _stop(standin: Standin) -> None:
        kill_all_of(standin.uid)
        standin.proc.wait(timeout=10)
