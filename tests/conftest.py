"""The suite's own tests share one embedded testbed per run, and it has GPUs for one reference group at a time:
every test that uses it is put in one pytest-xdist group (for `--dist loadgroup`). `nox -s tests` runs serially."""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "testbed" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("testbed-gpus"))
