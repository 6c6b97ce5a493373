"""LWS core promises beyond pod roles: the headless Service behind LWS_LEADER_ADDRESS, and the LWS status
(Available with its reason, observedGeneration). Read-only, on the run's own deployment.

Each case runs check functions from suite/conformance/checks/ (headless_service.py, lws_status.py); their
docstrings state the MUSTs."""

from __future__ import annotations

import pytest

from fixtures.cluster_views import LwsView
from fixtures.deployment_plugin import Deployed
from fixtures.kube import Kube
from fixtures.lws_release import OBSERVED_GENERATION_SINCE, LwsRelease
from fixtures.settings import Settings
from plumbing.wait import NotYet, WaitTimeout, wait_for
from suite.conformance.checks import headless_service, lws_status

pytestmark = pytest.mark.readonly


def _fail(check: object, problems: list[str]) -> None:
    assert not problems, f"{str(getattr(check, '__doc__', '')).strip()}\n" + "\n".join(
        f"  - {p}" for p in problems
    )


@pytest.mark.feature("LWS-CORE", "HeadlessService")
@pytest.mark.parametrize("check", headless_service.CHECKS, ids=lambda check: check.__name__)
def test_headless_service(check, kube: Kube, deployed: Deployed, record_property) -> None:  # type: ignore[no-untyped-def]
    view = headless_service.observe(kube, deployed.expect)
    policy = headless_service.subdomain_policy(view.lws)
    if policy != "Shared":
        pytest.skip(
            f"networkConfig.subdomainPolicy {policy}: LWS makes one headless Service per group instead"
        )
    problems = check(view, deployed.expect)
    leaders = [
        f"{deployed.expect.lws_name}-{g}.{deployed.expect.lws_name}.{deployed.namespace}"
        for g in range(deployed.expect.replicas)
    ]
    record_property(
        "figure", f"LWS_LEADER_ADDRESS {', '.join(leaders)} listed by svc/{deployed.expect.lws_name}"
    )
    _fail(check, problems)


@pytest.mark.feature("LWS-CORE", "AvailableCondition")
def test_lws_is_available_with_its_reason(
    kube: Kube, deployed: Deployed, lws_release: LwsRelease, record_property
) -> None:  # type: ignore[no-untyped-def]
    lws = LwsView.maybe(kube.lws(deployed.namespace, deployed.expect.lws_name))
    available = lws.condition("Available") if lws is not None else None
    generation = lws_release.observed_generation
    record_property(
        "figure",
        f"Available={available.status if available else None} reason {available.reason if available else None}"
        + (
            ""
            if generation
            else f"; its generation not judged: {lws_release.lacks('condition observedGeneration', OBSERVED_GENERATION_SINCE)}"
        ),
    )
    problems = lws_status.lws_is_available_with_its_reason(
        lws, with_generation=generation, update_condition=lws_release.update_condition
    )
    _fail(lws_status.lws_is_available_with_its_reason, problems)


@pytest.mark.feature("LWS-CORE", "AvailableCondition")
def test_observed_generation_catches_up(
    kube: Kube, deployed: Deployed, settings: Settings, lws_release: LwsRelease, record_property
) -> None:  # type: ignore[no-untyped-def]
    """Waits (bounded by the API timeout) for the controller to observe the current generation, then judges.
    Skipped on a release that records no observedGeneration (before v0.9.0)."""
    if not lws_release.observed_generation:
        pytest.skip(lws_release.lacks("status.observedGeneration", OBSERVED_GENERATION_SINCE))

    def caught_up() -> LwsView:
        lws = LwsView.maybe(kube.lws(deployed.namespace, deployed.expect.lws_name))
        if problems := lws_status.observed_generation_caught_up(lws):
            raise NotYet(problems[0])
        assert lws is not None
        return lws

    try:
        lws = wait_for(caught_up, what="observedGeneration to catch up", timeout=settings.timeouts.api)
    except WaitTimeout as exc:
        _fail(lws_status.observed_generation_caught_up, [str(exc)])
        return
    record_property("figure", f"generation {lws.generation} observed")
