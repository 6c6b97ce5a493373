"""A kubectl for the server the run talks to (plumbing/kubectl_skew.py): within one minor version of the API
server, whatever the testbed's version; one of the server's minor fetched from a release site (served here on
127.0.0.1, laid out as dl.k8s.io is) when none at hand fits, its sha256 checked; one line when none can be had."""

from __future__ import annotations

import hashlib
import platform
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_plumbing_kubectl import fake_kubectl

from plumbing.kubectl import KubectlNotFound
from plumbing.kubectl_skew import kubectl_for_server, server_minor

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def kubectl_script(minor: int) -> bytes:
    return f'#!/bin/sh\necho \'{{"clientVersion": {{"major": "1", "minor": "{minor}"}}}}\'\n'.encode()


@contextmanager
def release_site(files: dict[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """`files` (path -> bytes) over HTTP on 127.0.0.1; yields the base URL and the paths asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            data = files.get(self.path)
            self.send_response(200 if data is not None else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/release", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def release_of(minor: int, patch: int = 9, checksum: str | None = None) -> dict[str, bytes]:
    binary = kubectl_script(minor)
    path = f"/release/v1.{minor}.{patch}/bin/{sys.platform}/{ARCH}/kubectl"
    return {
        f"/release/stable-1.{minor}.txt": f"v1.{minor}.{patch}\n".encode(),
        path: binary,
        f"{path}.sha256": (checksum or hashlib.sha256(binary).hexdigest()).encode(),
    }


@pytest.fixture
def only_a_136_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$KUBECTL is a kubectl 1.36 and nothing else is found (no venv kubectl, nothing on PATH)."""
    kubectl = fake_kubectl(tmp_path / "k136", "36")
    monkeypatch.setenv("KUBECTL", str(kubectl))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "novenv" / "python"))
    monkeypatch.delenv("LWS_SUITE_KUBECTL_FETCH", raising=False)
    return kubectl


@pytest.mark.parametrize(
    ("git_version", "minor"),
    [("v1.31.2", 31), ("v1.30.4-eks-a737599", 30), ("v1.29.3+k3s1", 29), ("v2.0.0", None), ("", None)],
)
def test_the_servers_minor_is_read_from_its_version(git_version: str, minor: int | None) -> None:
    assert server_minor(git_version) == minor


@pytest.mark.parametrize("server", ["v1.35.1", "v1.36.3", "v1.37.0"])
def test_the_suites_kubectl_serves_a_server_one_minor_either_side(
    server: str, only_a_136_kubectl: Path, tmp_path: Path
) -> None:
    choice = kubectl_for_server(server, tmp_path / "cache")
    assert choice.path == only_a_136_kubectl and choice.note is None


def test_a_131_server_gets_a_131_kubectl_fetched_into_the_cache_and_says_so(
    only_a_136_kubectl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    with release_site(release_of(31)) as (base, asked):
        monkeypatch.setenv("LWS_SUITE_KUBECTL_RELEASES", base)
        choice = kubectl_for_server("v1.31.2", cache)
        assert choice.path == cache / "kubectl" / "v1.31.9" / "kubectl"
        assert choice.path.read_bytes() == kubectl_script(31)
        assert choice.note is not None and "\n" not in choice.note
        assert choice.note.startswith(f"kubectl: fetched kubectl v1.31.9 from {base} into {choice.path}")
        assert (
            "for the API server's v1.31.2" in choice.note
            and "(1.36) is out of kubectl's one-minor skew" in choice.note
        )
        fetched = len(asked)

        again = kubectl_for_server("v1.32.0", cache)  # within one minor of the cached 1.31: no second fetch
        assert again.path == choice.path and len(asked) == fetched
        assert again.note is not None and again.note.startswith(f"kubectl: using {choice.path} (1.31)")


def test_a_download_that_does_not_match_its_checksum_is_refused(
    only_a_136_kubectl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with release_site(release_of(31, checksum="0" * 64)) as (base, _):
        monkeypatch.setenv("LWS_SUITE_KUBECTL_RELEASES", base)
        with pytest.raises(KubectlNotFound) as caught:
            kubectl_for_server("v1.31.2", tmp_path / "cache")
    assert "does not match its published sha256" in str(caught.value)
    assert "install kubectl 1.30-1.32 and set $KUBECTL to it" in str(caught.value)
    assert not list((tmp_path / "cache").rglob("kubectl"))


def test_with_fetching_off_the_one_line_says_which_kubectl_to_install(
    only_a_136_kubectl: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LWS_SUITE_KUBECTL_FETCH", "0")
    with pytest.raises(KubectlNotFound) as caught:
        kubectl_for_server("v1.31.2", tmp_path / "cache")
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(
        f"no kubectl within one minor of the API server's v1.31.2 (found: {only_a_136_kubectl} (1.36))"
    )
    assert "install kubectl 1.30-1.32 and set $KUBECTL to it" in line


def test_an_older_kubectl_later_on_path_is_found_behind_the_venvs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under nox the venv's bin comes first on PATH; a kubectl 1.32 further along still serves a 1.31 server."""
    newer, older = fake_kubectl(tmp_path / "venv-bin", "36"), fake_kubectl(tmp_path / "usr-bin", "32")
    monkeypatch.delenv("KUBECTL", raising=False)
    monkeypatch.setenv("PATH", f"{newer.parent}:{older.parent}")
    monkeypatch.setattr(sys, "executable", str(newer.parent / "python"))
    choice = kubectl_for_server("v1.31.2", tmp_path / "cache")
    assert choice.path == older
    assert choice.note == (
        f"kubectl: using {older} (1.32) for the API server's v1.31.2: {newer} (1.36) is out of kubectl's "
        "one-minor skew"
    )
