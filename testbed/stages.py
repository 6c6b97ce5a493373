"""KWOK stages for the testbed: KWOK's defaults, except that a pod with a readiness probe is Ready only when its
simulated engine answers, as a kubelet running the probe would report it.

KWOK's default pod-ready stage marks every pod Running and Ready at once, probes ignored. Here:
- pods without a readiness probe (the vLLM worker) keep that default;
- pods with one (the vLLM leader, tcpSocket 8080) go Running but not Ready (`pod-start-unready`);
- the bridge annotates the pod `ENGINE_READY=true` once the engine's /health answers 200, and
  `pod-probe-ready` then turns Ready (a strategic-merge status patch, so restart counts are kept).
KWOK's default pod-delete stage also removes a terminating pod at once, which no kubelet does: it first stops the
containers (SIGTERM, then the process exits). Instant removal makes controllers race in ways real clusters rarely
see (LWS #998 fired on most worker deletions here), so terminating pods are removed after TERMINATION_S, a short
container stop; kwok's own "general" pod-delete stage also waits (1 s to the grace period).
Any Stage in kwokctl's config replaces all of its defaults, so the default node and pod stages are included
here, read from the KWOK module at the pinned version.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from testbed.bridge.suite_image import IMAGE_JQ

ENGINE_READY = "testbed.lws-vllm-suite.io/engine-ready"
HAS_PROBE = ".spec.containers.[].readinessProbe"
TERMINATION_S = 2.0
NOT_DELETING = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
NOT_READY = {
    "key": '.status.conditions.[] | select( .type == "Ready" ) | .status',
    "operator": "NotIn",
    "values": ["True"],
}

START_UNREADY_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
{{ $hostIPs := NodeIPsWith .spec.nodeName }}
{{ with $hostIPs }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""

PROBE_READY_STATUS = """\
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
containerStatuses:
{{ range .status.containerStatuses }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: {{ .restartCount }}
  state:
    running:
      startedAt: {{ with .state.running }}{{ .startedAt | Quote }}{{ else }}{{ $now | Quote }}{{ end }}
{{ end }}
"""


def _load(stage_dir: Path, relative: str) -> dict[str, Any]:
    return dict(yaml.safe_load((stage_dir / relative).read_text()))


def _pod_stage(
    name: str, expressions: list[dict[str, Any]], status: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    selector: dict[str, Any] = {"matchExpressions": expressions}
    if annotations:
        selector["matchAnnotations"] = annotations
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": selector,
            "next": {"statusTemplate": status},
        },
    }


def testbed_stages(stage_dir: Path) -> list[dict[str, Any]]:
    """All stages the testbed's KWOK runs (stage_dir: the KWOK module's kustomize/stage)."""
    pod_ready = _load(stage_dir, "pod/fast/pod-ready.yaml")
    unprobed = copy.deepcopy(pod_ready)
    unprobed["spec"]["selector"]["matchExpressions"].append({"key": HAS_PROBE, "operator": "DoesNotExist"})
    pending_probed: list[dict[str, Any]] = [
        NOT_DELETING,
        {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
        {"key": HAS_PROBE, "operator": "Exists"},
    ]
    running_unready: list[dict[str, Any]] = [
        NOT_DELETING,
        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        NOT_READY,
    ]
    return [
        _load(stage_dir, "node/fast/node-initialize.yaml"),
        _load(stage_dir, "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"),
        unprobed,
        _pod_stage("pod-start-unready", pending_probed, START_UNREADY_STATUS),
        _pod_stage("pod-probe-ready", running_unready, PROBE_READY_STATUS, {ENGINE_READY: "true"}),
        _bridge_completes_its_own(_load(stage_dir, "pod/fast/pod-complete.yaml")),
        _with_delay(_load(stage_dir, "pod/fast/pod-delete.yaml"), TERMINATION_S),
    ]


def _bridge_completes_its_own(stage: dict[str, Any]) -> dict[str, Any]:
    """KWOK's pod-complete ends a Job's pod at once; a pod whose container the bridge runs as a process (the
    suite's own image, testbed/bridge/suite_pods.py) ends when that process does, reported by the bridge."""
    stage["spec"]["selector"]["matchExpressions"].append({"key": IMAGE_JQ, "operator": "DoesNotExist"})
    return stage


def _with_delay(stage: dict[str, Any], seconds: float) -> dict[str, Any]:
    stage["spec"]["delay"] = {"durationMilliseconds": int(seconds * 1000)}
    return stage
