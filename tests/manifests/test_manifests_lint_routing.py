"""The lint's rules on how clients reach the leader: the leader Service and the readinessProbe, each failing on a
manifest wrong in its way."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lint_testkit import (
    Broken,
    Objects,
    assert_rule_fires,
    broken_cases,
    leader,
    selector,
)

BROKEN: list[Broken] = [
    # (id, how it is broken, code, severity, a phrase the message must hold)
    (
        "service-selects-workers",
        lambda o: selector(o).pop("role"),
        "service-selects-workers",
        "error",
        "also matches worker pods",
    ),
    (
        "service-without-name-label",
        lambda o: selector(o).pop("leaderworkerset.sigs.k8s.io/name"),
        "service-selector-name",
        "error",
        "lacks leaderworkerset.sigs.k8s.io/name: vllm",
    ),
    (
        "service-names-another-lws",
        lambda o: selector(o).__setitem__("leaderworkerset.sigs.k8s.io/name", "other"),
        "service-selector-name",
        "error",
        "lacks leaderworkerset.sigs.k8s.io/name: vllm",
    ),
    (
        "service-label-not-on-leader",
        lambda o: selector(o).__setitem__("role", "head"),
        "service-selects-no-leader",
        "error",
        "matches no leader pod",
    ),
    (
        "worker-carries-leader-label",
        lambda o: o[0]["spec"]["leaderWorkerTemplate"]["workerTemplate"].__setitem__(
            "metadata", {"labels": {"role": "leader"}}
        ),
        "service-selects-workers",
        "error",
        "also matches worker pods",
    ),
    (
        "service-wrong-target-port",
        lambda o: o[1]["spec"]["ports"][0].__setitem__("targetPort", 8000),
        "service-port",
        "error",
        "port 8000, but vLLM listens on 8080",
    ),
    ("no-service", lambda o: o.pop(1), "service-missing", "warning", "no Service for LWS 'vllm'"),
    (
        "no-readiness-probe",
        lambda o: leader(o).pop("readinessProbe"),
        "readiness-probe-missing",
        "warning",
        "no readinessProbe",
    ),
    (
        "probe-on-wrong-port",
        lambda o: leader(o)["readinessProbe"]["tcpSocket"].__setitem__("port", 8000),
        "readiness-probe-port",
        "warning",
        "checks port 8000, but vLLM listens on 8080",
    ),
]


@pytest.mark.parametrize(("breakage", "code", "severity", "phrase"), broken_cases(BROKEN))
def test_each_rule_fails_on_a_manifest_wrong_in_its_way(
    breakage: Callable[[Objects], None], code: str, severity: str, phrase: str
) -> None:
    assert_rule_fires(breakage, code, severity, phrase)
