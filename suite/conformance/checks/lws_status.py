"""The LWS status a platform team's tooling reads: the Available condition with its reason, and observedGeneration.

LWS v0.9.0 sets Available with reason `AllGroupsReady` and message "All replicas are ready", Progressing with
reason `GroupsProgressing`, UpdateInProgress with reason `GroupsUpdating` (sigs.k8s.io/lws@v0.9.0
pkg/controllers/leaderworkerset_controller.go makeCondition), each condition carrying the generation it was
computed for, and copies metadata.generation into status.observedGeneration once it has reconciled it
(same file, updateStatus). A status whose observedGeneration lags says nothing about the current spec.
Before v0.9.0 LWS sets no observedGeneration, neither on the status nor on a condition (sigs.k8s.io/lws@v0.8.0
pkg/controllers/leaderworkerset_controller.go makeCondition; fixtures/lws_release.py): on those releases the
generation is not judged (`with_generation=False`), and the rolling-update condition is UpgradeInProgress before
v0.5.0 (`update_condition`).
"""

from __future__ import annotations

from fixtures.cluster_views import LwsView

AVAILABLE_REASON = "AllGroupsReady"
PROGRESSING_REASON = "GroupsProgressing"
UPDATING_REASON = "GroupsUpdating"


def lws_is_available_with_its_reason(
    lws: LwsView | None, *, with_generation: bool = True, update_condition: str = "UpdateInProgress"
) -> list[str]:
    """MUST (LWS-CORE AvailableCondition): the ready LWS has condition Available=True with reason AllGroupsReady,
    computed for the current generation (on releases that record it), and Progressing and UpdateInProgress are
    not True."""
    if lws is None:
        return ["the LWS is gone"]
    available = lws.condition("Available")
    if available is None:
        return ["the LWS has no Available condition"]
    problems = []
    if available.status != "True" or available.reason != AVAILABLE_REASON:
        problems.append(
            f"Available is {available.status} with reason {available.reason!r} "
            f"({available.message!r}), expected True with reason {AVAILABLE_REASON}"
        )
    if with_generation and available.observed_generation != lws.generation:
        problems.append(
            f"Available was computed for generation {available.observed_generation}, the LWS is at {lws.generation}"
        )
    for kind in ("Progressing", update_condition):
        cond = lws.condition(kind)
        if cond is not None and cond.status == "True":
            problems.append(f"{kind} is True ({cond.reason}) on an LWS that is ready and not updating")
    return problems


def observed_generation_caught_up(lws: LwsView | None) -> list[str]:
    """MUST (LWS-CORE AvailableCondition): status.observedGeneration equals metadata.generation: the controller
    has reconciled the current spec."""
    if lws is None:
        return ["the LWS is gone"]
    if lws.observed_generation != lws.generation:
        return [
            f"status.observedGeneration is {lws.observed_generation}, metadata.generation is {lws.generation}"
        ]
    return []
