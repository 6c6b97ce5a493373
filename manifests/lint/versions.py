"""Rules on the image and the vLLM inside it: one image for leader and worker, a pinned tag, the launch script at
the path this release has it, and the Ray backend flag releases >= 0.11.1 need."""

from __future__ import annotations

from collections.abc import Iterator

from manifests.lint.findings import Finding, LintContext, error, warning
from manifests.vllm_releases import CURRENT_SCRIPT, LEGACY_SCRIPT, ScriptLayout, image_release

_SCRIPT_DIRS = {ScriptLayout.LEGACY: LEGACY_SCRIPT, ScriptLayout.CURRENT: CURRENT_SCRIPT}


def check_version_drift(ctx: LintContext) -> Iterator[Finding]:
    images = {pod.image for pod, _ in ctx.templates() if pod.image}
    if len(images) > 1:
        yield warning(
            "image-mismatch",
            f"leader and worker run different images ({', '.join(sorted(images))}); Ray needs the same "
            "Ray, Python and vLLM versions on every node: use one image",
            ctx.lws_ref,
        )
    for image in sorted(images):
        release = image_release(image)
        if release.is_vllm and release.floating:
            yield warning(
                "image-unpinned",
                f"image {image} is a floating tag: the vLLM inside changes under you (the docs' manifest "
                "broke that way); pin a release, e.g. docker.io/vllm/vllm-openai:v0.10.1",
                ctx.lws_ref,
            )
    yield from _script_drift(ctx)
    yield from _ray_flag_drift(ctx)


def _script_drift(ctx: LintContext) -> Iterator[Finding]:
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
            yield error(
                "script-path",
                f"{who} run {path}, but {image} predates multi-node-serving.sh (added by vLLM PR #12913, "
                "2025-02-20, in v0.8.0): use docker.io/vllm/vllm-openai:v0.10.1 with launch profile legacy",
                ctx.lws_ref,
            )
        elif kind == "unknown":
            yield warning(
                "script-path",
                f"{who} run {path}; {image} was released around vLLM PR #41084 (2026-05-08), which moved the "
                f"script from {LEGACY_SCRIPT} to {CURRENT_SCRIPT}, so we cannot tell which it has: check with "
                "`ls /vllm-workspace/examples/*/multi-node-serving.sh` in the image, or pin v0.10.1 (legacy) "
                "or v0.22.1 (current)",
                ctx.lws_ref,
            )
        elif path.endswith(LEGACY_SCRIPT):
            yield error(
                "script-path",
                f"{who} run {path}, but {release.describe()} has it at /vllm-workspace/{CURRENT_SCRIPT} "
                "(moved by vLLM PR #41084, 2026-05-08): bash exits with 'No such file or directory', no Ray "
                "cluster forms, and the group is recreated in a loop; use launch profile current "
                "(`render --profile current`) or pin an image of the legacy era, e.g. "
                "docker.io/vllm/vllm-openai:v0.10.1",
                ctx.lws_ref,
            )
        else:
            yield error(
                "script-path",
                f"{who} run {path}, but {release.describe()} is older than vLLM PR #41084 (2026-05-08) and has "
                f"it at /vllm-workspace/{LEGACY_SCRIPT}; use launch profile legacy or an image >= v0.22.1",
                ctx.lws_ref,
            )


def _ray_flag_drift(ctx: LintContext) -> Iterator[Finding]:
    info = ctx.info
    serve = info.leader.launch.serve if info.leader.launch else None
    if serve is None or info.image is None or info.world_size is None:
        return
    if info.world_size <= info.gpus_per_pod or info.executor_backend is not None or serve.has("nnodes"):
        return
    release = image_release(info.image)
    if not release.needs_ray_flag:
        return
    yield error(
        "ray-backend-flag",
        f"the leader runs `vllm serve` with TP {info.tp} x PP {info.pp} = {info.world_size} GPUs on a pod with "
        f"{info.gpus_per_pod}, without --distributed-executor-backend ray; {release.describe()} is vLLM "
        ">= 0.11.1, which stopped falling back to Ray on its own (vLLM PR #25775, 2025-10-30) and exits with "
        f"'World size ({info.world_size}) is larger than the number of available GPUs ({info.gpus_per_pod}) "
        "in this node': add --distributed-executor-backend ray (launch profile current does) or pin an image "
        "<= v0.11.0 such as v0.10.1",
        ctx.lws_ref,
    )
