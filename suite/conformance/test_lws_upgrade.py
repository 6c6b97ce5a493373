"""LWS-UPGRADE: the LWS controller and its CRDs upgraded in place from --lws-upgrade-from to --lws-version while
two groups serve under load (suite/conformance/upgrade_run.py, made once before the other checks). Each MUST is
a test of its own, judged on the one record (suite/conformance/checks/upgrade.py).

A downgrade (--lws-version older than --lws-upgrade-from) is reported, not judged: its tests are expected to fail
(xfail, not strict), so the report shows what it did without failing the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from suite.conformance.checks import upgrade
from suite.conformance.checks.upgrade import UpgradeRecord
from suite.conformance.judging import assert_conformant

pytestmark = pytest.mark.readonly  # they read the upgrade's record; the upgrade itself ran before any check


def _judge(
    record: UpgradeRecord,
    request: pytest.FixtureRequest,
    record_property: Any,
    *checks: Callable[[UpgradeRecord], list[str]],
    figure: str | None = None,
) -> None:
    record_property("figure", figure or upgrade.figure(record))
    if record.skipped:
        pytest.skip(record.skipped)
    if record.downgrade:
        request.applymarker(
            pytest.mark.xfail(
                reason=f"LWS {record.from_version} -> {record.to_version} is a downgrade: reported, not judged",
                strict=False,
            )
        )
    assert record.error is None, f"the upgrade could not be made or watched: {record.error}"
    assert_conformant(record, *checks)


@pytest.mark.feature("LWS-UPGRADE", "UpgradeLeavesGroups")
def test_an_in_place_upgrade_leaves_the_running_groups_alone(
    lws_upgrade: UpgradeRecord, request: pytest.FixtureRequest, record_property: Any
) -> None:
    _judge(lws_upgrade, request, record_property, upgrade.groups_are_left_alone)


@pytest.mark.feature("LWS-UPGRADE", "UpgradeServesEveryRequest")
def test_every_request_through_the_service_is_served_during_the_upgrade(
    lws_upgrade: UpgradeRecord, request: pytest.FixtureRequest, record_property: Any
) -> None:
    _judge(lws_upgrade, request, record_property, upgrade.every_request_was_served)


@pytest.mark.feature("LWS-UPGRADE", "UpgradeStaysAvailable")
def test_the_lws_stays_available_and_gains_the_new_releases_status_fields(
    lws_upgrade: UpgradeRecord, request: pytest.FixtureRequest, record_property: Any
) -> None:
    nothing_new = upgrade.new_fields_to_check(lws_upgrade)
    figure = upgrade.figure(lws_upgrade) + (f"; {nothing_new}" if nothing_new else "")
    _judge(
        lws_upgrade,
        request,
        record_property,
        upgrade.stayed_available,
        upgrade.has_the_new_status_fields,
        figure=figure,
    )


@pytest.mark.feature("LWS-UPGRADE", "RollsAfterUpgrade")
def test_a_template_change_after_the_upgrade_rolls_the_groups(
    lws_upgrade: UpgradeRecord, request: pytest.FixtureRequest, record_property: Any
) -> None:
    figure = f"after the upgrade: {lws_upgrade.roll_figure}" if lws_upgrade.roll_figure else None
    _judge(lws_upgrade, request, record_property, upgrade.rolls_after_the_upgrade, figure=figure)
