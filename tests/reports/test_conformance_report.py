"""The conformance report's verdicts, as the Gateway API conformance suite gives them (failure if a test failed,
else partial if one was skipped, else success), its statistics and named tests, and what it says about
features that are unsupported, exempt, or were not tested at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reports.conformance_profiles import BY_NAME, FEATURES, PROFILES, UnknownName, feature_of
from reports.conformance_report import (
    Cluster,
    Implementation,
    Support,
    TestRecord,
    Topology,
    build_report,
    profile_report,
    read_report,
    summary_lines,
)

API = BY_NAME["VLLM-API"]
RESTART = BY_NAME["LWS-RESTART"]
ALL_EXTENDED = frozenset(n for n, f in FEATURES.items() if f.extended)


def passed(name: str, *features: str, figure: str | None = None) -> TestRecord:
    return TestRecord(name, features, "passed", figure=figure)


def skipped(name: str, *features: str, reason: str = "skipped by name (--skip-tests)") -> TestRecord:
    return TestRecord(name, features, "skipped", reason=reason)


def failed(name: str, *features: str) -> TestRecord:
    return TestRecord(name, features, "failed", reason="AssertionError: 1 of 2 pods replaced")


API_PASSING = [
    passed("test_endpoints", "ServiceRouting"),
    passed("test_models", "OpenAIAPI"),
    passed("test_metrics", "Metrics"),
]


def test_every_feature_tested_and_passing_is_success_with_its_statistics() -> None:
    report = profile_report(API, API_PASSING, Support(ALL_EXTENDED))
    assert report.core.result == "success"
    assert report.core.statistics.model_dump() == {"passed": 3, "skipped": 0, "failed": 0}
    assert report.core.skipped_tests == report.core.failed_tests == report.core.untested_features == []
    assert report.extended is None  # VLLM-API has no extended features
    assert report.summary == "Core tests succeeded (3 passed)."


def test_a_skipped_test_makes_the_level_partial_and_is_named() -> None:
    tests = [*API_PASSING, skipped("test_streaming", "OpenAIAPI")]
    report = profile_report(API, tests, Support(ALL_EXTENDED))
    assert report.core.result == "partial"
    assert report.core.statistics.model_dump() == {"passed": 3, "skipped": 1, "failed": 0}
    assert report.core.skipped_tests == ["test_streaming"]
    assert "partially succeeded with 1 test skip(s)" in report.summary


def test_a_failed_test_makes_the_level_a_failure_whatever_else_was_skipped() -> None:
    tests = [*API_PASSING, skipped("test_streaming", "OpenAIAPI"), failed("test_health", "OpenAIAPI")]
    report = profile_report(API, tests, Support(ALL_EXTENDED))
    assert report.core.result == "failure"
    assert report.core.statistics.model_dump() == {"passed": 3, "skipped": 1, "failed": 1}
    assert report.core.failed_tests == ["test_health"]
    assert report.core.skipped_tests == ["test_streaming"]


def test_a_feature_no_test_covered_is_named_and_keeps_the_level_from_success() -> None:
    report = profile_report(API, API_PASSING[:2], Support(ALL_EXTENDED))
    assert report.core.result == "partial"
    assert report.core.untested_features == ["Metrics"]
    assert "1 untested feature(s)" in report.summary


def test_a_profile_whose_tests_did_not_run_is_not_success() -> None:
    report = profile_report(BY_NAME["LWS-ROLLOUT"], API_PASSING, Support(ALL_EXTENDED))
    assert report.core.result == "partial"
    assert report.core.statistics.model_dump() == {"passed": 0, "skipped": 0, "failed": 0}
    assert report.core.untested_features == ["RollingUpdate"]
    assert report.extended is not None and report.extended.result == "partial"
    assert report.extended.untested_features == ["RolloutPartition", "RolloutMaxSurge"]
    assert report.summary.startswith("Core tests did not run (1 feature(s) untested).")


def test_a_test_of_an_extended_feature_counts_at_the_extended_level() -> None:
    tests = [passed("test_recreate", "RecreateGroupOnPodRestart"), failed("test_none", "RestartPolicyNone")]
    support = Support(frozenset({"RestartPolicyNone"}))
    report = profile_report(RESTART, tests, support)
    assert report.core.result == "success"
    assert report.extended is not None
    assert report.extended.result == "failure"
    assert report.extended.failed_tests == ["test_none"]


def test_unsupported_features_are_listed_and_their_skipped_tests_not_counted() -> None:
    tests = [
        passed("test_recreate", "RecreateGroupOnPodRestart"),
        passed("test_none", "RestartPolicyNone"),
        skipped("test_after_start", "RecreateGroupAfterStart", reason="unsupported feature"),
        skipped("test_isolation", "GroupIsolation", reason="unsupported feature"),
    ]
    support = Support(frozenset({"RestartPolicyNone"}), {"RecreateGroupAfterStart": "LWS v0.8.0 predates it"})
    report = profile_report(RESTART, tests, support)
    assert report.extended is not None
    assert report.extended.result == "success"
    assert report.extended.statistics.model_dump() == {"passed": 1, "skipped": 0, "failed": 0}
    assert report.unsupported_features == ["GroupIsolation", "RecreateGroupAfterStart"]
    assert report.supported_features == ["RecreateGroupOnPodRestart", "RestartPolicyNone"]
    assert report.feature_support["RecreateGroupAfterStart"] == "LWS v0.8.0 predates it"


def test_with_no_extended_feature_supported_there_is_no_extended_status() -> None:
    tests = [passed("test_recreate", "RecreateGroupOnPodRestart")]
    report = profile_report(RESTART, tests, Support(frozenset()))
    assert report.extended is None
    assert report.summary == "Core tests succeeded (1 passed)."


def test_an_exempt_core_feature_is_listed_and_its_skipped_test_makes_core_partial() -> None:
    tests = [*API_PASSING[:2], skipped("test_metrics", "Metrics", reason="exempt feature VLLM-API/Metrics")]
    report = profile_report(API, tests, Support(ALL_EXTENDED, exempt=frozenset({"Metrics"})))
    assert report.exempt_features == ["Metrics"]
    assert report.core.result == "partial"
    assert report.core.skipped_tests == ["test_metrics"]


def implementation() -> Implementation:
    return Implementation(
        cluster=Cluster(kind="embedded-testbed", name="pytest-0123abcd"),
        kubernetes_version="v1.36.3",
        lws_version="v0.9.0",
        topology=Topology(name="tp8-pp2", tensor_parallel_size=8, pipeline_parallel_size=2, replicas=1),
    )


def test_the_report_lists_the_chosen_profiles_in_registry_order_and_round_trips_through_yaml(
    tmp_path: Path,
) -> None:
    report = build_report(
        tests=[*API_PASSING, passed("test_recreate", "RecreateGroupOnPodRestart", figure="5.1 s")],
        profiles=["VLLM-API", "LWS-RESTART"],
        support=Support(frozenset()),
        implementation=implementation(),
        date="2026-12-03T14:00:00+00:00",
        run_id="abcd1234",
    )
    path = report.write(tmp_path / "conformance-report.yaml")
    raw = yaml.safe_load(path.read_text())
    assert list(raw)[:3] == ["apiVersion", "kind", "date"]
    assert raw["kind"] == "ConformanceReport"
    assert [p["name"] for p in raw["profiles"]] == ["LWS-RESTART", "VLLM-API"]
    assert {"skippedTests", "failedTests", "untestedFeatures"} <= set(raw["profiles"][0]["core"])
    assert raw["implementation"]["topology"]["tensorParallelSize"] == 8
    assert raw["implementation"]["vllmVersion"] is None  # unknown stays null
    assert raw["tests"][3] == {
        "name": "test_recreate",
        "features": ["LWS-RESTART/RecreateGroupOnPodRestart"],
        "outcome": "passed",
        "figure": "5.1 s",
        "reason": None,
        "durationSeconds": None,
    }
    assert read_report(path) == report


def test_the_summary_has_one_line_per_test_with_its_figure_or_reason_then_the_profiles_and_the_path() -> None:
    report = build_report(
        tests=[
            passed("test_recreate[delete-worker]", "RecreateGroupOnPodRestart", figure="serving after 5.1 s"),
            failed("test_none", "RestartPolicyNone"),
            skipped("test_after_start", "RecreateGroupAfterStart", reason="unsupported feature X"),
        ],
        profiles=["LWS-RESTART"],
        support=Support(frozenset({"RestartPolicyNone"})),
        implementation=implementation(),
        date="2026-12-03T14:00:00+00:00",
        run_id="abcd1234",
    )
    lines = summary_lines(report, Path("artifacts/abcd1234/conformance-report.yaml"))
    assert lines[0] == "PASS  test_recreate[delete-worker]  serving after 5.1 s"
    assert lines[1].startswith("FAIL  test_none") and lines[1].endswith(
        "AssertionError: 1 of 2 pods replaced"
    )
    assert lines[2].startswith("SKIP  test_after_start") and lines[2].endswith("unsupported feature X")
    assert (
        lines[3]
        == "LWS-RESTART: Core tests succeeded (1 passed). Extended tests failed with 1 test failure(s)."
    )
    assert lines[4] == "conformance report: artifacts/abcd1234/conformance-report.yaml"


def test_feature_names_are_unique_across_profiles_and_each_has_a_description() -> None:
    names = [f.name for p in PROFILES for f in p.features]
    assert len(names) == len(set(names)) == len(FEATURES)
    assert all(f.description for f in FEATURES.values())
    assert all(p.description.endswith(".") for p in PROFILES)


def test_the_lws_profiles_keep_the_names_tests_are_marked_with() -> None:
    def names(profile: str) -> tuple[list[str], list[str]]:
        found = BY_NAME[profile]
        return [f.name for f in found.core], [f.name for f in found.extended]

    assert names("LWS-CORE") == (
        ["PodRoles", "GroupEnvironment", "PodNaming", "Placement", "HeadlessService", "AvailableCondition"],
        ["StartupPolicyLeaderReady", "MultiGroupServiceSpread"],
    )
    assert names("LWS-RESTART") == (
        ["RecreateGroupOnPodRestart"],
        ["RestartPolicyNone", "GroupIsolation", "RecreateGroupAfterStart"],
    )
    assert names("LWS-ROLLOUT") == (["RollingUpdate"], ["RolloutPartition", "RolloutMaxSurge"])


def test_a_marker_naming_an_unknown_profile_or_feature_says_what_exists() -> None:
    with pytest.raises(UnknownName, match="choose from LWS-CORE, LWS-RESTART"):
        feature_of("LWS-NOPE", "PodRoles")
    with pytest.raises(UnknownName, match="profile VLLM-API has no feature 'PodRoles'; its features are"):
        feature_of("VLLM-API", "PodRoles")


def test_a_partial_level_names_the_tests_that_did_not_run_in_its_summary() -> None:
    faults = [
        "delete-worker",
        "delete-leader",
        "crash-worker",
        "crash-leader",
        "crash-both",
        "evict",
        "drain",
    ]
    deselected = "not run: deselected (-k, -m, --deselect or --last-failed)"
    tests = [passed(f"test_fault[{faults[0]}]", "RecreateGroupOnPodRestart")] + [
        skipped(f"test_fault[{f}]", "RecreateGroupOnPodRestart", reason=deselected) for f in faults[1:]
    ]
    report = profile_report(RESTART, tests, Support(frozenset()))
    assert report.core.result == "partial"
    assert report.core.skipped_tests == [f"test_fault[{f}]" for f in faults[1:]]
    assert report.summary == (
        "Core tests partially succeeded with 6 test skip(s); not run: test_fault[delete-leader], "
        "test_fault[crash-worker], test_fault[crash-leader], test_fault[crash-both], test_fault[evict] "
        "and 1 more (skippedTests)."
    )


def test_a_vllm_profile_judged_on_the_simulated_engine_says_so_in_its_summary_and_the_report(
    tmp_path: Path,
) -> None:
    tests = [*API_PASSING, passed("test_recreate", "RecreateGroupOnPodRestart")]
    simulated = implementation().model_copy(update={"engine": "sim"})
    report = build_report(
        tests=tests,
        profiles=["VLLM-API", "LWS-RESTART"],
        support=Support(frozenset()),
        implementation=simulated,
        date="2026-12-03T14:00:00+00:00",
        run_id="abcd1234",
    )
    lines = summary_lines(report)
    assert "LWS-RESTART: Core tests succeeded (1 passed)." in lines  # LWS's verdicts stand on LWS itself
    api = next(line for line in lines if line.startswith("VLLM-API:"))
    assert api == (
        "VLLM-API: Core tests succeeded (3 passed). (engine: sim; judged on the simulated engine, not on vLLM)"
    )
    raw = yaml.safe_load(report.write(tmp_path / "r.yaml").read_text())
    assert raw["implementation"]["engine"] == "sim"
    assert "simulated engine" in raw["profiles"][1]["summary"]
    real = build_report(
        tests=tests,
        profiles=["VLLM-API"],
        support=Support(frozenset()),
        implementation=implementation().model_copy(update={"engine": "vllm-cpu"}),
        date="2026-12-03T14:00:00+00:00",
        run_id="abcd1234",
    )
    assert real.profiles[0].summary == "Core tests succeeded (3 passed)."
