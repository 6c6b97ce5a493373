"""Shared fixtures of the conformance checks: one snapshot of the deployment per module; and with
--lws-upgrade-from, the in-place LWS upgrade, made once before any check (the others then run on the new release)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fixtures.conformance_run import UPGRADE_RECORD
from fixtures.deployment_plugin import Deployed
from fixtures.kube import Kube
from fixtures.plan import Plan
from fixtures.run_state import RunState
from fixtures.settings import Settings
from fixtures.snapshot import Snapshot, take
from plumbing.wait import WaitTimeout
from suite.conformance import upgrade_run
from suite.conformance.checks.upgrade import UpgradeRecord
from testbed.failures import PrerequisiteMissing, TestbedError
from testbed.gotool import BuildError


@pytest.fixture(scope="module")
def snapshot(kube: Kube, deployed: Deployed) -> Snapshot:
    return take(kube, deployed.expect)


@pytest.fixture(scope="session", autouse=True)
def _lws_upgrade_first(request: pytest.FixtureRequest, settings: Settings) -> None:
    """With --lws-upgrade-from, the upgrade happens before the first check of every worker starts (the first
    worker makes it; the others wait for its record), so no other check runs beside it or on the old release."""
    if settings.lws_upgrade_from is not None:
        request.getfixturevalue("lws_upgrade")


@pytest.fixture(scope="session")
def lws_upgrade(
    request: pytest.FixtureRequest, settings: Settings, run_state: RunState, plan: Plan, progress: Any
) -> UpgradeRecord:
    """The run's in-place upgrade (suite/conformance/upgrade_run.py), made once per run."""
    if settings.lws_upgrade_from is None:
        pytest.skip(
            "no --lws-upgrade-from given: the LWS-UPGRADE profile upgrades the testbed's LWS in place"
        )
    with run_state.locked(UPGRADE_RECORD):
        found = run_state.read(UPGRADE_RECORD)
        if found is not None:
            return UpgradeRecord.of(found)
        record = _upgrade(request, settings, plan, progress)
        run_state.write(UPGRADE_RECORD, dataclasses.asdict(record))
        return record


def _upgrade(request: pytest.FixtureRequest, settings: Settings, plan: Plan, progress: Any) -> UpgradeRecord:
    a, b = str(settings.lws_upgrade_from), settings.upgrade_to
    replicas = max(2, plan.info.replicas)
    try:
        deploy_variant = request.getfixturevalue("deploy_variant")
    except pytest.skip.Exception as exc:  # e.g. the real engine without its opt-in: no upgrade is made
        progress(f"LWS-UPGRADE: not run, the testbed stays on LWS {a}: {exc.msg}")
        return UpgradeRecord(a, b, skipped=f"no upgrade made: {exc.msg}")
    try:
        return upgrade_run.observe(
            deploy_variant,
            request.getfixturevalue("kube"),
            request.getfixturevalue("testbed").name,
            replicas,
            settings,
            progress,
        )
    except PrerequisiteMissing as exc:  # the new release cannot be had: once, exit 3
        raise pytest.exit.Exception(f"prerequisite missing: {exc}", returncode=3) from None
    except pytest.fail.Exception as exc:  # the variant did not deploy
        return UpgradeRecord(a, b, replicas=replicas, error=str(exc.msg))
    except (BuildError, TestbedError, WaitTimeout) as exc:
        return UpgradeRecord(
            a, b, replicas=replicas, error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        )
