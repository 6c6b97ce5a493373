"""Rules on the LeaderWorkerSet object itself: its restart policy, the length of its name, tokens written
into its pod templates in plain text, and pod templates that open the container boundary."""

from __future__ import annotations

from collections.abc import Iterator

from manifests.lint.findings import Finding, LintContext, error, warning
from manifests.process_isolation import boundary_breaches
from manifests.redact import is_secret_env, redacted

RECOMMENDED_RESTART_POLICY = "RecreateGroupOnPodRestart"


def check_restart_policy(ctx: LintContext) -> Iterator[Finding]:
    policy = ctx.info.restart_policy
    if ctx.info.size > 1 and policy != RECOMMENDED_RESTART_POLICY:
        alias = " (the LWS webhook turns Default into None)" if policy == "Default" else ""
        yield warning(
            "restart-policy",
            f"restartPolicy is {policy}{alias}; with vLLM over Ray a restarted pod does not rejoin the running "
            f"engine, so the group stays broken until all of it restarts: use {RECOMMENDED_RESTART_POLICY}",
            ctx.lws_ref,
        )


def check_name(ctx: LintContext) -> Iterator[Finding]:
    name = ctx.info.lws_name
    limit = 51 - ctx.info.replicas // 10
    if len(name) > limit:
        yield error(
            "lws-name-too-long",
            f"LWS name {name!r} has {len(name)} characters; with {ctx.info.replicas} replica(s) the limit is "
            f"{limit} (51 - replicas/10), or worker pods fail because the StatefulSet name and its hash "
            "label exceed 63 characters: shorten it",
            ctx.lws_ref,
        )


def check_plain_text_tokens(ctx: LintContext) -> Iterator[Finding]:
    for pod, template in ctx.templates():
        spec = template.get("spec") or {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            for env in container.get("env") or []:
                name, value = str(env.get("name", "")), env.get("value")
                if isinstance(value, str) and is_secret_env(name, value):
                    yield warning(
                        "plain-text-token",
                        f"{pod.role} container {container.get('name')!r} sets {name} in plain text "
                        f"({redacted(value)}); anyone who can read the LWS can read it: use valueFrom.secretKeyRef "
                        "(kubectl create secret generic hf-token --from-literal=token=...)",
                        ctx.lws_ref,
                    )


def check_process_isolation(ctx: LintContext) -> Iterator[Finding]:
    """hostPID, shareProcessNamespace or a privileged container: the suite's crash faults will not run there
    (their signals could reach other containers, or the node), so the run reads partial."""
    for pod, template in ctx.templates():
        breaches = boundary_breaches(template.get("spec") or {})
        if breaches:
            yield warning(
                "process-isolation",
                f"the {pod.role} pod template sets {', '.join(breaches)}: a process in its container can see and "
                "signal processes outside it, so the suite refuses the crash faults on these pods (their tests "
                "are skipped and LWS-RESTART reads partial); drop these fields unless the engine needs them",
                ctx.lws_ref,
            )
