"""The preflight lint: a pure function from manifest objects to findings, run before anything is written
to a cluster. Each rule is a small function; each finding says what is wrong and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from manifests.describe import ManifestInfo, PodTemplateInfo, describe
from manifests.launch_command import expand_kubelet_vars
from manifests.manifest import NAME_LABEL, WORKER_INDEX_LABEL, Manifest, object_ref
from manifests.quantity import GI, parse_bytes
from manifests.redact import is_secret_env, redacted
from manifests.render import to_yaml
from manifests.vllm_releases import CURRENT_SCRIPT, LEGACY_SCRIPT, ScriptLayout, image_release

Severity = Literal["error", "warning"]
DryRun = Callable[[str], Sequence[str]]

DEFAULT_NODE_GPUS = 8
SHM_MIN_BYTES = 1 * GI  # the runtime default is 64 MiB; the docs use 15Gi
RECOMMENDED_RESTART_POLICY = "RecreateGroupOnPodRestart"
_SCRIPT_DIRS = {ScriptLayout.LEGACY: LEGACY_SCRIPT, ScriptLayout.CURRENT: CURRENT_SCRIPT}


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    code: str
    message: str
    object: str | None = None  # e.g. "LeaderWorkerSet/vllm"

    def __str__(self) -> str:
        where = f" [{self.object}]" if self.object else ""
        return f"{self.severity}: {self.code}{where}: {self.message}"


class NodeCapacity(BaseModel):
    """What the target's nodes offer. nodes=None: unknown, so only the per-node fit is checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpus_per_node: int = Field(default=DEFAULT_NODE_GPUS, ge=1)
    nodes: int | None = Field(default=None, ge=0)


class LintReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}


class _Context(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    manifest: Manifest
    info: ManifestInfo
    capacity: NodeCapacity

    @property
    def lws_ref(self) -> str:
        return object_ref(self.manifest.lws)

    def templates(self) -> list[tuple[PodTemplateInfo, dict[str, Any]]]:
        """(info, pod template) for each template that makes pods: the worker only when size > 1."""
        lwt = (self.manifest.lws.get("spec") or {}).get("leaderWorkerTemplate") or {}
        worker = lwt.get("workerTemplate") or {}
        result = [(self.info.leader, lwt.get("leaderTemplate") or worker)]
        if self.info.size > 1:
            result.append((self.info.worker, worker))
        return result


def _error(code: str, message: str, obj: str | None = None) -> Finding:
    return Finding(severity="error", code=code, message=message, object=obj)


def _warning(code: str, message: str, obj: str | None = None) -> Finding:
    return Finding(severity="warning", code=code, message=message, object=obj)


def _vllm_container(template: dict[str, Any], name: str | None) -> dict[str, Any]:
    containers = (template.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == name), containers[0] if containers else {})


# --- rules -------------------------------------------------------------------------------------------


def check_command(ctx: _Context) -> Iterator[Finding]:
    launch = ctx.info.leader.launch
    if launch is None or launch.serve is None:
        yield _warning(
            "command-unreadable",
            "found no `vllm serve` (or vllm.entrypoints.openai.api_server) in the leader's command, so TP, PP, "
            "port and version drift were not checked; start vLLM from the leader's command or args",
            ctx.lws_ref,
        )


def check_parallelism(ctx: _Context) -> Iterator[Finding]:
    info = ctx.info
    if info.world_size is not None and info.group_gpus == 0 and info.world_size != info.group_devices:
        yield _error(
            "parallelism-mismatch",
            f"TP {info.tp} x PP {info.pp} = {info.world_size} ranks, but the group's {info.size} pod(s) ask for no "
            f"GPUs, and vLLM's CPU build runs one rank per pod; make TP x PP equal the group size",
            ctx.lws_ref,
        )
    elif info.world_size is not None and info.group_gpus > 0 and info.world_size != info.group_gpus:
        worker = f" + {info.size - 1} worker(s) x {info.worker_gpus_per_pod}" if info.size > 1 else ""
        yield _error(
            "parallelism-mismatch",
            f"TP {info.tp} x PP {info.pp} = {info.world_size} GPUs, but the group has {info.group_gpus} "
            f"(leader {info.gpus_per_pod}{worker}, size {info.size}); make TP x PP equal size x GPUs per pod, "
            "or vLLM waits for GPUs that are not there (or leaves some idle)",
            ctx.lws_ref,
        )
    declared = info.ray_cluster_size
    if declared is not None and declared.isdigit() and int(declared) != info.size:
        yield _error(
            "ray-cluster-size",
            f"the leader waits for --ray_cluster_size={declared} Ray nodes, but the group has {info.size} pods; "
            "use --ray_cluster_size=$(LWS_GROUP_SIZE)",
            ctx.lws_ref,
        )


def check_mp_launch(ctx: _Context) -> Iterator[Finding]:
    """vLLM's own multi-node launch (--distributed-executor-backend mp --nnodes N): every pod runs
    `vllm serve` with the same node count, world and master address; the leader is node rank 0 and serves,
    each worker is node rank $(LWS_WORKER_INDEX) and runs --headless."""
    info = ctx.info
    if info.launch_profile != "mp":
        return
    env = {"LWS_GROUP_SIZE": str(info.size)}
    leader = info.leader.launch.serve if info.leader.launch else None
    worker = info.worker.launch.serve if info.worker.launch and info.size > 1 else None
    assert leader is not None  # launch_profile is only "mp" for a leader that runs vllm serve
    nnodes = expand_kubelet_vars(leader.value("nnodes") or "1", env)
    if nnodes != str(info.size):
        yield _error(
            "mp-nnodes",
            f"the leader's vllm serve says --nnodes {leader.value('nnodes') or 1}, but the group has {info.size} "
            "pods; vLLM waits for nodes that never come (or leaves pods idle): use --nnodes $(LWS_GROUP_SIZE)",
            ctx.lws_ref,
        )
    elif info.world_size is not None and info.world_size % info.size == 0:
        ranks = info.world_size // info.size
        if ranks != info.devices_per_pod:
            yield _error(
                "mp-ranks-per-pod",
                f"TP {info.tp} x PP {info.pp} over {info.size} nodes is {ranks} ranks per pod, but each pod has "
                f"{info.devices_per_pod} device(s); make ranks per pod equal GPUs per pod",
                ctx.lws_ref,
            )
    # $(LWS_WORKER_INDEX) is 0 in the leader pod: vLLM's LWS page gives every pod the same command that way.
    if (leader.value("node-rank") or "0") not in ("0", "$(LWS_WORKER_INDEX)") or leader.has("headless"):
        yield _error(
            "mp-leader-rank",
            "the leader must be --node-rank 0 (or $(LWS_WORKER_INDEX), which is 0 in the leader) and not --headless",
            ctx.lws_ref,
        )
    if info.size == 1:
        return
    if worker is None:
        yield _error("mp-worker", "the worker runs no `vllm serve`; with the mp backend it must run "
                     "`vllm serve ... --headless --node-rank $(LWS_WORKER_INDEX)`", ctx.lws_ref)  # fmt: skip
        return
    if not worker.has("headless"):
        yield _error("mp-worker", "the worker's vllm serve lacks --headless; it would start a second API server",
                     ctx.lws_ref)  # fmt: skip
    if worker.value("node-rank") != "$(LWS_WORKER_INDEX)":
        yield _error(
            "mp-worker",
            f"the worker's --node-rank is {worker.value('node-rank')!r}; use $(LWS_WORKER_INDEX) so each worker "
            "takes its own rank",
            ctx.lws_ref,
        )
    addresses = {leader.value("master-addr"), worker.value("master-addr")}
    if len(addresses) != 1 or None in addresses:
        yield _error(
            "mp-master-addr",
            f"leader and worker must name one master address (--master-addr), got {sorted(map(str, addresses))}; "
            "use --master-addr $(LWS_LEADER_ADDRESS) on both",
            ctx.lws_ref,
        )
    for flag in ("nnodes", "tensor-parallel-size", "pipeline-parallel-size", "master-port"):
        if leader.value(flag) != worker.value(flag):
            yield _error(
                "mp-worker",
                f"leader and worker disagree on --{flag} ({leader.value(flag)} vs {worker.value(flag)}); "
                "every node must start the same world",
                ctx.lws_ref,
            )


def _extended(resource: str) -> bool:
    domain = resource.split("/", 1)[0] if "/" in resource else ""
    return bool(domain) and domain != "kubernetes.io" and not domain.endswith(".kubernetes.io")


def check_gpu_resources(ctx: _Context) -> Iterator[Finding]:
    node_gpus = ctx.capacity.gpus_per_node
    for pod, template in ctx.templates():
        for container in (template.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            limits = resources.get("limits") or {}
            requests = resources.get("requests") or {}
            for name in sorted({*limits, *requests}):
                if not _extended(name):
                    continue
                if name in requests and name not in limits:
                    yield _error(
                        "extended-resource-limits",
                        f"{pod.role} container {container.get('name')!r} requests {name} without a limit; "
                        "extended resources cannot be overcommitted: set limits (requests then default to them)",
                        ctx.lws_ref,
                    )
                elif name in requests and str(requests[name]) != str(limits[name]):
                    yield _error(
                        "extended-resource-limits",
                        f"{pod.role} container {container.get('name')!r} has {name} requests "
                        f"{requests[name]} != limits {limits[name]}; the API server rejects that: make them equal",
                        ctx.lws_ref,
                    )
        if pod.gpus > node_gpus:
            yield _error(
                "gpu-exceeds-node",
                f"a {pod.role} pod asks for {pod.gpus} GPUs but a node has {node_gpus}; a pod cannot span "
                "nodes, so it stays Pending: lower GPUs per pod and raise the group size",
                ctx.lws_ref,
            )
    nodes = ctx.capacity.nodes
    gpus = max(ctx.info.gpus_per_pod, ctx.info.worker_gpus_per_pod or 0)
    if nodes is not None and 0 < gpus <= node_gpus:
        pods = ctx.info.size * ctx.info.replicas
        needed = math.ceil(pods / (node_gpus // gpus))
        if needed > nodes:
            yield _error(
                "not-enough-nodes",
                f"{ctx.info.replicas} group(s) of {ctx.info.size} pods x {gpus} GPUs need {needed} nodes with "
                f"{node_gpus} GPUs, the cluster has {nodes}; lower replicas or add nodes",
                ctx.lws_ref,
            )


def _selects(selector: dict[str, str], labels: dict[str, str | None]) -> bool:
    """Whether a selector matches a pod's labels; a label value None means 'any value'."""
    return all(key in labels and labels[key] in (None, value) for key, value in selector.items())


def check_service(ctx: _Context) -> Iterator[Finding]:
    info = ctx.info
    service = ctx.manifest.service
    if service is None:
        yield _warning(
            "service-missing",
            f"no Service for LWS {info.lws_name!r} in the manifest; add the leader Service (selector "
            f"{NAME_LABEL}: {info.lws_name}, role: leader) so clients reach only the leader",
            ctx.lws_ref,
        )
        return
    ref = object_ref(service)
    selector = info.service_selector or {}
    if selector.get(NAME_LABEL) != info.lws_name:
        yield _error(
            "service-selector-name",
            f"the selector {selector} lacks {NAME_LABEL}: {info.lws_name}; without it the Service also "
            "picks pods of any other LWS with the same labels: add it",
            ref,
        )
    # Labels the pods will carry: the template's, plus those LWS sets (group-index and -key: any value).
    lws_labels: dict[str, str | None] = {
        NAME_LABEL: info.lws_name,
        "leaderworkerset.sigs.k8s.io/group-index": None,
        "leaderworkerset.sigs.k8s.io/group-key": None,
    }
    leader_labels = {**info.leader.labels, **lws_labels, WORKER_INDEX_LABEL: "0"}
    worker_labels = {**info.worker.labels, **lws_labels, WORKER_INDEX_LABEL: "1"}
    if info.size > 1 and _selects(selector, worker_labels):
        yield _error(
            "service-selects-workers",
            f"the selector {selector} also matches worker pods, which serve nothing on the vLLM port; add "
            f'role: leader (with that label on the leader template only) or {WORKER_INDEX_LABEL}: "0"',
            ref,
        )
    if not _selects({k: v for k, v in selector.items() if k != NAME_LABEL}, leader_labels):
        yield _error(
            "service-selects-no-leader",
            f"the selector {selector} matches no leader pod (leader labels: {info.leader.labels}); the "
            "Service gets no endpoints: match the leader template's labels",
            ref,
        )
    target = info.service_target_port
    if isinstance(target, int) and info.port is not None and target != info.port:
        yield _error(
            "service-port",
            f"the Service sends traffic to port {target}, but vLLM listens on {info.port} (--port); "
            "make targetPort equal to --port",
            ref,
        )


def check_restart_policy(ctx: _Context) -> Iterator[Finding]:
    policy = ctx.info.restart_policy
    if ctx.info.size > 1 and policy != RECOMMENDED_RESTART_POLICY:
        alias = " (the LWS webhook turns Default into None)" if policy == "Default" else ""
        yield _warning(
            "restart-policy",
            f"restartPolicy is {policy}{alias}; with vLLM over Ray a restarted pod does not rejoin the running "
            f"engine, so the group stays broken until all of it restarts: use {RECOMMENDED_RESTART_POLICY}",
            ctx.lws_ref,
        )


def check_version_drift(ctx: _Context) -> Iterator[Finding]:
    images = {pod.image for pod, _ in ctx.templates() if pod.image}
    if len(images) > 1:
        yield _warning(
            "image-mismatch",
            f"leader and worker run different images ({', '.join(sorted(images))}); Ray needs the same "
            "Ray, Python and vLLM versions on every node: use one image",
            ctx.lws_ref,
        )
    for image in sorted(images):
        release = image_release(image)
        if release.is_vllm and release.floating:
            yield _warning(
                "image-unpinned",
                f"image {image} is a floating tag: the vLLM inside changes under you (the docs' manifest "
                "broke that way); pin a release, e.g. docker.io/vllm/vllm-openai:v0.10.1",
                ctx.lws_ref,
            )
    yield from _script_drift(ctx)
    yield from _ray_flag_drift(ctx)


def _script_drift(ctx: _Context) -> Iterator[Finding]:
    problems: dict[tuple[str, str, str], list[str]] = {}
    for pod, _ in ctx.templates():
        script = pod.launch.script if pod.launch else None
        if script is None or pod.image is None:
            continue
        release = image_release(pod.image)
        if not release.is_vllm:
            continue
        uses = next((lay for lay, path in _SCRIPT_DIRS.items() if script.path.endswith(path)), None)
        layout = release.script_layout
        if layout is ScriptLayout.NONE:
            problems.setdefault(("too-old", script.path, pod.image), []).append(pod.role)
        elif layout is ScriptLayout.UNKNOWN and uses is not None:
            problems.setdefault(("unknown", script.path, pod.image), []).append(pod.role)
        elif uses is not None and layout is not uses:
            problems.setdefault(("moved", script.path, pod.image), []).append(pod.role)
    for (kind, path, image), roles in problems.items():
        release = image_release(image)
        who = " and ".join(roles)
        if kind == "too-old":
            yield _error(
                "script-path",
                f"{who} run {path}, but {image} predates multi-node-serving.sh (added by vLLM PR #12913, "
                "2025-02-20, in v0.8.0): use docker.io/vllm/vllm-openai:v0.10.1 with launch profile legacy",
                ctx.lws_ref,
            )
        elif kind == "unknown":
            yield _warning(
                "script-path",
                f"{who} run {path}; {image} was released around vLLM PR #41084 (2026-05-08), which moved the "
                f"script from {LEGACY_SCRIPT} to {CURRENT_SCRIPT}, so we cannot tell which it has: check with "
                "`ls /vllm-workspace/examples/*/multi-node-serving.sh` in the image, or pin v0.10.1 (legacy) "
                "or v0.22.1 (current)",
                ctx.lws_ref,
            )
        elif path.endswith(LEGACY_SCRIPT):
            yield _error(
                "script-path",
                f"{who} run {path}, but {release.describe()} has it at /vllm-workspace/{CURRENT_SCRIPT} "
                "(moved by vLLM PR #41084, 2026-05-08): bash exits with 'No such file or directory', no Ray "
                "cluster forms, and the group is recreated in a loop; use launch profile current "
                "(`render --profile current`) or pin an image of the legacy era, e.g. "
                "docker.io/vllm/vllm-openai:v0.10.1",
                ctx.lws_ref,
            )
        else:
            yield _error(
                "script-path",
                f"{who} run {path}, but {release.describe()} is older than vLLM PR #41084 (2026-05-08) and has "
                f"it at /vllm-workspace/{LEGACY_SCRIPT}; use launch profile legacy or an image >= v0.22.1",
                ctx.lws_ref,
            )


def _ray_flag_drift(ctx: _Context) -> Iterator[Finding]:
    info = ctx.info
    serve = info.leader.launch.serve if info.leader.launch else None
    if serve is None or info.image is None or info.world_size is None:
        return
    if info.world_size <= info.gpus_per_pod or info.executor_backend is not None or serve.has("nnodes"):
        return
    release = image_release(info.image)
    if not release.needs_ray_flag:
        return
    yield _error(
        "ray-backend-flag",
        f"the leader runs `vllm serve` with TP {info.tp} x PP {info.pp} = {info.world_size} GPUs on a pod with "
        f"{info.gpus_per_pod}, without --distributed-executor-backend ray; {release.describe()} is vLLM "
        ">= 0.11.1, which stopped falling back to Ray on its own (vLLM PR #25775, 2025-10-30) and exits with "
        f"'World size ({info.world_size}) is larger than the number of available GPUs ({info.gpus_per_pod}) "
        "in this node': add --distributed-executor-backend ray (launch profile current does) or pin an image "
        "<= v0.11.0 such as v0.10.1",
        ctx.lws_ref,
    )


def check_plain_text_tokens(ctx: _Context) -> Iterator[Finding]:
    for pod, template in ctx.templates():
        spec = template.get("spec") or {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            for env in container.get("env") or []:
                name, value = str(env.get("name", "")), env.get("value")
                if isinstance(value, str) and is_secret_env(name, value):
                    yield _warning(
                        "plain-text-token",
                        f"{pod.role} container {container.get('name')!r} sets {name} in plain text "
                        f"({redacted(value)}); anyone who can read the LWS can read it: use valueFrom.secretKeyRef "
                        "(kubectl create secret generic hf-token --from-literal=token=...)",
                        ctx.lws_ref,
                    )


def check_shm(ctx: _Context) -> Iterator[Finding]:
    for pod, template in ctx.templates():
        spec = template.get("spec") or {}
        container = _vllm_container(template, pod.container)
        mount = next(
            (m for m in container.get("volumeMounts") or [] if m.get("mountPath") == "/dev/shm"), None
        )
        if mount is None:
            yield _warning(
                "shm-missing",
                f"the {pod.role} has no /dev/shm volume, so it gets the runtime's 64 MiB, too little for NCCL "
                "and vLLM's shared-memory broadcast: mount an emptyDir with medium: Memory (the docs use 15Gi)",
                ctx.lws_ref,
            )
            continue
        volume: dict[str, Any] = next(
            (v for v in spec.get("volumes") or [] if v.get("name") == mount.get("name")), {}
        )
        empty_dir = volume.get("emptyDir")
        if not isinstance(empty_dir, dict) or empty_dir.get("medium") != "Memory":
            yield _warning(
                "shm-not-memory",
                f"the {pod.role}'s /dev/shm volume {mount.get('name')!r} is not an emptyDir with medium: Memory; "
                "shared memory on disk is slow or not shared: use emptyDir {medium: Memory}",
                ctx.lws_ref,
            )
            continue
        size = empty_dir.get("sizeLimit")
        size_bytes = parse_bytes(size) if size is not None else None
        if size_bytes is not None and size_bytes < SHM_MIN_BYTES:
            yield _warning(
                "shm-small",
                f"the {pod.role}'s /dev/shm is limited to {size}; NCCL and vLLM need more with TP > 1: "
                "use at least 1Gi (the docs use 15Gi)",
                ctx.lws_ref,
            )


def check_readiness(ctx: _Context) -> Iterator[Finding]:
    info = ctx.info
    template = next(t for p, t in ctx.templates() if p.role == "leader")
    containers = (template.get("spec") or {}).get("containers") or []
    probes = [c["readinessProbe"] for c in containers if isinstance(c.get("readinessProbe"), dict)]
    if not probes:
        yield _warning(
            "readiness-probe-missing",
            "the leader has no readinessProbe, so it is Ready (and the Service routes to it) long before vLLM "
            "listens; probe the vLLM port (tcpSocket, or httpGet /health)",
            ctx.lws_ref,
        )
        return
    probe = probes[0]
    port = (probe.get("tcpSocket") or probe.get("httpGet") or {}).get("port")
    if isinstance(port, int) and info.port is not None and port != info.port:
        yield _warning(
            "readiness-probe-port",
            f"the leader's readinessProbe checks port {port}, but vLLM listens on {info.port}: probe {info.port}",
            ctx.lws_ref,
        )


def check_name(ctx: _Context) -> Iterator[Finding]:
    name = ctx.info.lws_name
    limit = 51 - ctx.info.replicas // 10
    if len(name) > limit:
        yield _error(
            "lws-name-too-long",
            f"LWS name {name!r} has {len(name)} characters; with {ctx.info.replicas} replica(s) the limit is "
            f"{limit} (51 - replicas/10), or worker pods fail because the StatefulSet name and its hash "
            "label exceed 63 characters: shorten it",
            ctx.lws_ref,
        )


RULES: tuple[Callable[[_Context], Iterator[Finding]], ...] = (
    check_command,
    check_parallelism,
    check_mp_launch,
    check_gpu_resources,
    check_service,
    check_restart_policy,
    check_version_drift,
    check_plain_text_tokens,
    check_shm,
    check_readiness,
    check_name,
)


def lint(
    manifest: Manifest,
    capacity: NodeCapacity | None = None,
    dry_run: DryRun | None = None,
) -> LintReport:
    """Check a manifest before it is applied. dry_run, if given, gets the YAML and returns server errors."""
    ctx = _Context(manifest=manifest, info=describe(manifest), capacity=capacity or NodeCapacity())
    findings = [finding for rule in RULES for finding in rule(ctx)]
    if dry_run is not None:
        for message in dry_run(to_yaml(list(manifest.objects))):
            findings.append(_error("dry-run", f"the API server rejects the manifest: {message}"))
    return LintReport(source=manifest.source, findings=tuple(findings))
