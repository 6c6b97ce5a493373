"""The preflight lint: the reference is clean in every topology and profile, each rule on the LWS object itself
(restart policy, name length, tokens in plain text, pods that open the container boundary) fires on a manifest wrong in its way, and the dry-run hook.
The other rule families have their own files: test_manifests_lint_{launch,resources,routing,versions}.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml
from lint_testkit import (
    Broken,
    Objects,
    assert_rule_fires,
    broken_cases,
    leader,
    pod_spec,
    reference,
    run_lint,
    selector,
    worker,
)

from manifests import Overrides, load_variant, render

BROKEN: list[Broken] = [
    # (id, how it is broken, code, severity, a phrase the message must hold)
    (
        "restart-policy-none",
        lambda o: o[0]["spec"]["leaderWorkerTemplate"].__setitem__("restartPolicy", "None"),
        "restart-policy",
        "warning",
        "restartPolicy is None",
    ),
    (
        "restart-policy-default",
        lambda o: o[0]["spec"]["leaderWorkerTemplate"].__setitem__("restartPolicy", "Default"),
        "restart-policy",
        "warning",
        "turns Default into None",
    ),
    (
        "token-in-plain-text",
        lambda o: leader(o).__setitem__("env", [{"name": "HF_TOKEN", "value": "hf_" + "Ab1" * 12}]),
        "plain-text-token",
        "warning",
        "sets HF_TOKEN in plain text (<redacted, 39 characters>)",
    ),
    (
        "token-like-value-under-any-name",
        lambda o: worker(o).__setitem__("env", [{"name": "HUB_X", "value": "hf_" + "Zz9" * 10}]),
        "plain-text-token",
        "warning",
        "sets HUB_X in plain text",
    ),
    (
        "host-pid",
        lambda o: pod_spec(o, "worker").__setitem__("hostPID", True),
        "process-isolation",
        "warning",
        "the worker pod template sets spec.hostPID: a process in its container can see and signal",
    ),
    (
        "shared-process-namespace",
        lambda o: pod_spec(o, "leader").__setitem__("shareProcessNamespace", True),
        "process-isolation",
        "warning",
        "the leader pod template sets spec.shareProcessNamespace",
    ),
    (
        "privileged-container",
        lambda o: leader(o).__setitem__("securityContext", {"privileged": True}),
        "process-isolation",
        "warning",
        "sets spec.containers[vllm-leader].securityContext.privileged",
    ),
]


@pytest.mark.parametrize(("breakage", "code", "severity", "phrase"), broken_cases(BROKEN))
def test_each_rule_fails_on_a_manifest_wrong_in_its_way(
    breakage: Callable[[Objects], None], code: str, severity: str, phrase: str
) -> None:
    assert_rule_fires(breakage, code, severity, phrase)


def test_the_reference_and_every_topology_in_both_profiles_pass_clean() -> None:
    assert run_lint(list(load_variant("reference").objects)).findings == ()
    for topology in ("tp8-pp2", "tp8-pp1", "tp4-pp4", "tp16-pp1"):
        for profile in ("legacy", "current"):
            report = run_lint(render(topology, Overrides(profile=profile)))
            assert report.findings == (), (topology, profile, [str(f) for f in report.findings])


def test_a_token_value_never_appears_in_findings() -> None:
    token = "hf_" + "Secret7" * 6
    objects = reference()
    leader(objects)["env"] = [{"name": "HF_TOKEN", "value": token}]
    report = run_lint(objects)
    assert "plain-text-token" in report.codes()
    assert token not in "\n".join(str(f) for f in report.findings)
    assert token[3:12] not in report.model_dump_json()


def test_the_restart_policy_contrast_variant_only_warns() -> None:
    report = run_lint(reference(restart_policy="None"))
    assert report.ok
    assert report.codes() == {"restart-policy"}


def test_a_single_node_group_needs_no_group_restart_and_no_worker_routing() -> None:
    objects = render("tp8-pp1", Overrides(restart_policy="None"))
    selector(objects).pop("role")
    assert run_lint(objects).findings == ()


def test_lws_name_limit_depends_on_replicas() -> None:
    assert run_lint(reference(lws_name="a" * 51)).findings == ()
    assert run_lint(reference(lws_name="a" * 52)).codes() == {"lws-name-too-long"}
    assert run_lint(reference(lws_name="a" * 50, replicas=10)).findings == ()
    long_for_ten = run_lint(reference(lws_name="a" * 51, replicas=10))
    assert long_for_ten.codes() == {"lws-name-too-long"}
    assert "the limit is 50" in long_for_ten.errors[0].message


def test_the_dry_run_hook_gets_the_yaml_and_its_errors_become_findings() -> None:
    seen: list[str] = []

    def dry_run(text: str) -> list[str]:
        seen.append(text)
        return ['LeaderWorkerSet.leaderworkerset.x-k8s.io "vllm" is invalid: spec.replicas: Invalid value']

    objects = reference()
    report = run_lint(objects, dry_run=dry_run)
    assert list(yaml.safe_load_all(seen[0])) == objects
    assert [f.code for f in report.errors] == ["dry-run"]
    assert "spec.replicas: Invalid value" in report.errors[0].message
    assert run_lint(objects, dry_run=lambda _text: []).findings == ()
