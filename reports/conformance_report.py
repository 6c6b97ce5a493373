"""The conformance report: one YAML file per run saying, per profile, which features passed.

Modelled on the Gateway API conformance report (kubernetes-sigs/gateway-api, conformance/apis/v1/
conformancereport.go and profilereport.go for the fields, conformance/utils/suite/reports.go `compileResults`
for the verdicts): per profile a core and an extended status, each with a result (failure if any test failed,
else partial if any was skipped, else success), statistics, and the skipped and failed tests by name. Tests of
an extended feature the implementation does not support are left out of the statistics (Gateway's
NOT_SUPPORTED) and the feature is listed as unsupported. One addition: a feature no test covered in this run
is named in `untestedFeatures` and makes its level partial, so a profile whose tests did not run never reads
as success; and a test deselected at collection (`-k`) counts as skipped ("not run: deselected"), so a feature
covered by some of its tests only is partial too, and the summary names the tests that did not run.
docs/conformance-report.md documents every field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from reports.conformance_profiles import BY_NAME, FEATURES, Profile

API_VERSION = "lws-vllm-suite/v1alpha1"
KIND = "ConformanceReport"
FILENAME = "conformance-report.yaml"

Outcome = Literal["passed", "failed", "skipped"]
NAMED_IN_SUMMARY = 5  # tests not run named in a profile's summary sentence; all are in skippedTests
Verdict = Literal["success", "partial", "failure"]


@dataclass(frozen=True)
class TestRecord:
    """One conformance test as it ended: the features it exercises (names from the registry)."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    features: tuple[str, ...]
    outcome: Outcome
    figure: str | None = None
    reason: str | None = None  # the skip reason, or the first line of the failure
    duration_s: float | None = None


@dataclass(frozen=True)
class Support:
    """Which extended features the implementation supports (core ones always count as supported), how each
    was decided, and the features exempted by hand (their tests are skipped and counted as skipped)."""

    supported: frozenset[str]
    reasons: dict[str, str] = field(default_factory=dict)
    exempt: frozenset[str] = frozenset()

    def unsupported(self, name: str) -> bool:
        return FEATURES[name].extended and name not in self.supported


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Statistics(_Model):
    passed: int = 0
    skipped: int = 0
    failed: int = 0


class Status(_Model):
    result: Verdict
    statistics: Statistics
    skipped_tests: list[str] = []
    failed_tests: list[str] = []
    untested_features: list[str] = []


class ProfileReport(_Model):
    name: str
    summary: str
    core: Status
    extended: Status | None = None
    supported_features: list[str]
    unsupported_features: list[str]
    exempt_features: list[str]
    feature_support: dict[str, str]


class Cluster(_Model):
    kind: str  # embedded-testbed | kubeconfig | in-cluster | endpoint
    name: str | None = None
    server: str | None = None


class Topology(_Model):
    name: str | None = None
    model: str | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    lws_name: str | None = None
    group_size: int | None = None
    replicas: int | None = None
    nodes: int | None = None
    gpus: int | None = None
    gpu_product: str | None = None


class Implementation(_Model):
    cluster: Cluster
    kubernetes_version: str | None = None
    lws_version: str | None = None
    lws_upgraded_from: str | None = None  # --lws-upgrade-from: the release the testbed ran before its upgrade
    vllm_image: str | None = None
    vllm_version: str | None = None
    engine: str | None = None
    endpoint: str | None = None
    topology: Topology


class TestEntry(_Model):
    __test__ = False

    name: str
    features: list[str]
    outcome: Outcome
    figure: str | None = None
    reason: str | None = None
    duration_seconds: float | None = None


class ConformanceReport(_Model):
    api_version: str = API_VERSION
    kind: str = KIND
    date: str
    run_id: str
    suite_revision: str | None = None
    implementation: Implementation
    profiles: list[ProfileReport]
    tests: list[TestEntry]

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False, width=110)
        path.write_text(text)
        return path


def read_report(path: Path) -> ConformanceReport:
    return ConformanceReport.model_validate(yaml.safe_load(path.read_text()))


# verdicts ---------------------------------------------------------------------------------------------------
def _level_status(tests: list[TestRecord], features: Iterable[str]) -> Status:
    stats = Statistics()
    skipped: list[str] = []
    failed: list[str] = []
    covered: set[str] = set()
    for test in tests:
        covered.update(test.features)
        if test.outcome == "passed":
            stats.passed += 1
        elif test.outcome == "failed":
            stats.failed += 1
            failed.append(test.name)
        else:
            stats.skipped += 1
            skipped.append(test.name)
    untested = [f for f in features if f not in covered]
    result: Verdict = "failure" if stats.failed else "partial" if stats.skipped or untested else "success"
    return Status(
        result=result,
        statistics=stats,
        skipped_tests=skipped,
        failed_tests=failed,
        untested_features=untested,
    )


def profile_report(profile: Profile, tests: Iterable[TestRecord], support: Support) -> ProfileReport:
    """The profile's verdicts from the tests that exercise any of its features."""
    names = {f.name for f in profile.features}
    core_tests: list[TestRecord] = []
    extended_tests: list[TestRecord] = []
    for test in tests:
        mine = names.intersection(test.features)
        if not mine:
            continue
        if test.outcome == "skipped" and any(support.unsupported(f) for f in test.features):
            continue  # not supported: listed under unsupportedFeatures, not counted (Gateway's NOT_SUPPORTED)
        (extended_tests if any(FEATURES[f].extended for f in mine) else core_tests).append(test)
    core = _level_status(core_tests, [f.name for f in profile.core])
    supported_extended = [f.name for f in profile.extended if f.name in support.supported]
    extended = (
        _level_status(extended_tests, supported_extended) if supported_extended or extended_tests else None
    )
    return ProfileReport(
        name=profile.name,
        summary=_summary(core, extended),
        core=core,
        extended=extended,
        supported_features=[f.name for f in profile.core] + supported_extended,
        unsupported_features=[f.name for f in profile.extended if f.name not in support.supported],
        exempt_features=[f.name for f in profile.features if f.name in support.exempt],
        feature_support={f.name: support.reasons.get(f.name, "") for f in profile.extended},
    )


def _summary(core: Status, extended: Status | None) -> str:
    text = f"Core tests {_status_words(core)}."
    if extended is not None:
        text += f" Extended tests {_status_words(extended)}."
    return text


def _status_words(status: Status) -> str:
    s = status.statistics
    if s.passed + s.failed + s.skipped == 0:
        return f"did not run ({len(status.untested_features)} feature(s) untested)"
    if status.result == "failure":
        return f"failed with {s.failed} test failure(s)"
    if status.result == "success":
        return f"succeeded ({s.passed} passed)"
    parts = [f"{s.skipped} test skip(s)"] if s.skipped else []
    if status.untested_features:
        parts.append(f"{len(status.untested_features)} untested feature(s)")
    return "partially succeeded with " + " and ".join(parts) + _not_run(status.skipped_tests)


def _not_run(names: list[str]) -> str:
    if not names:
        return ""
    more = len(names) - NAMED_IN_SUMMARY
    shown = ", ".join(names[:NAMED_IN_SUMMARY]) + (f" and {more} more (skippedTests)" if more > 0 else "")
    return f"; not run: {shown}"


def build_report(
    *,
    tests: list[TestRecord],
    profiles: Iterable[str],
    support: Support,
    implementation: Implementation,
    date: str,
    run_id: str,
    suite_revision: str | None = None,
) -> ConformanceReport:
    """The run's report: the selected profiles (in registry order), and every conformance test of the run."""
    chosen = set(profiles)
    return ConformanceReport(
        date=date,
        run_id=run_id,
        suite_revision=suite_revision,
        implementation=implementation,
        profiles=[
            with_engine_note(profile_report(p, tests, support), implementation.engine)
            for name, p in BY_NAME.items()
            if name in chosen
        ],
        tests=[
            TestEntry(
                name=t.name,
                features=[FEATURES[f].key for f in t.features],
                outcome=t.outcome,
                figure=t.figure,
                reason=t.reason,
                duration_seconds=t.duration_s,
            )
            for t in tests
        ],
    )


# the engine a vLLM verdict stands on ----------------------------------------------------------------------------
SIMULATED_ENGINE = "sim"  # Implementation.engine of the testbed's simulated vLLM (fixtures/run_metadata.SIM)
VLLM_PROFILE_PREFIX = "VLLM-"


def with_engine_note(report: ProfileReport, engine: str | None) -> ProfileReport:
    """A vLLM profile judged on the testbed's simulator says so beside its verdict: its logs and answers came
    from the simulated engine, so the verdict is about the deployment and the suite, not about vLLM."""
    if engine != SIMULATED_ENGINE or not report.name.startswith(VLLM_PROFILE_PREFIX):
        return report
    note = " (engine: sim; judged on the simulated engine, not on vLLM)"
    return report.model_copy(update={"summary": report.summary + note})


# the end-of-run table -----------------------------------------------------------------------------------------
WORDS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def summary_lines(report: ConformanceReport, path: Path | None = None) -> list[str]:
    """One line per MUST (test): PASS / FAIL / SKIP, its name, its key figure (or why it failed or was
    skipped); one line per profile; then where the report is."""
    width = max((len(t.name) for t in report.tests), default=0)
    lines = []
    for test in report.tests:
        detail = test.figure if test.outcome == "passed" else test.reason
        if detail is None and test.duration_seconds is not None:
            detail = f"({test.duration_seconds:.1f} s)"
        lines.append(f"{WORDS[test.outcome]}  {test.name:<{width}}  {detail or ''}".rstrip())
    lines += [f"{profile.name}: {profile.summary}" for profile in report.profiles]
    if path is not None:
        lines.append(f"conformance report: {path}")
    return lines
