"""The LWS status a platform team's tooling reads: the Available condition with its reason, and observedGeneration.

LWS v0.9.0 sets Available with reason `AllGroupsReady` and message "All replicas are ready", Progressing with
reason `GroupsProgressing`, UpdateInProgress with reason `GroupsUpdating` (sigs.k8s.io/lws@v0.9.0
pkg/controllers/leaderworkerset_controller.go makeCondition), each condition carrying the generation it was
computed for, and copies metadata.generation into status.observedGeneration once it has reconciled it
(same file, updateStatus). A status whose observedGeneration lags says nothing about the current spec.
"""

from __future__ import annotations

from typing import Any

AVAILABLE_REASON = "AllGroupsReady"
PROGRESSING_REASON = "GroupsProgressing"
UPDATING_REASON = "GroupsUpdating"


def condition(lws: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((lws or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def lws_is_available_with_its_reason(lws: dict[str, Any] | None) -> list[str]:
    """MUST (LWS-CORE AvailableCondition): the ready LWS has condition Available=True with reason AllGroupsReady,
    computed for the current generation, and Progressing and UpdateInProgress are not True."""
    if lws is None:
        return ["the LWS is gone"]
    generation = lws["metadata"].get("generation")
    available = condition(lws, "Available")
    if available is None:
        return ["the LWS has no Available condition"]
    problems = []
    if available.get("status") != "True" or available.get("reason") != AVAILABLE_REASON:
        problems.append(
            f"Available is {available.get('status')} with reason {available.get('reason')!r} "
            f"({available.get('message')!r}), expected True with reason {AVAILABLE_REASON}"
        )
    if available.get("observedGeneration") != generation:
        problems.append(
            f"Available was computed for generation {available.get('observedGeneration')}, the LWS is at {generation}"
        )
    for kind in ("Progressing", "UpdateInProgress"):
        cond = condition(lws, kind)
        if cond is not None and cond.get("status") == "True":
            problems.append(f"{kind} is True ({cond.get('reason')}) on an LWS that is ready and not updating")
    return problems


def observed_generation_caught_up(lws: dict[str, Any] | None) -> list[str]:
    """MUST (LWS-CORE AvailableCondition): status.observedGeneration equals metadata.generation: the controller
    has reconciled the current spec."""
    if lws is None:
        return ["the LWS is gone"]
    generation = lws["metadata"].get("generation")
    observed = (lws.get("status") or {}).get("observedGeneration")
    if observed != generation:
        return [f"status.observedGeneration is {observed}, metadata.generation is {generation}"]
    return []
