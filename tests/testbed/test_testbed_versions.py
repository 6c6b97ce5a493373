"""--lws-version / --kubernetes-version on the testbed: parsing, the two caches (each version built once, earlier
builds adopted), the release's RBAC as kustomize renders it, and a version that cannot be had (one line, exit 3)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed import build, gotool, lws_build, lws_rbac, versions

ROOT = Path(__file__).resolve().parents[2]


def test_versions_are_release_tags_and_a_missing_v_is_added() -> None:
    assert versions.release("--lws-version", "0.8.0") == "v0.8.0"
    assert versions.release("--kubernetes-version", " v1.35.4 ", major=1) == "v1.35.4"
    for bad in ("0.8", "latest", "v0.8.0-rc1", ""):
        with pytest.raises(
            versions.BadVersion, match=r"--lws-version .*not a release version; give one like"
        ):
            versions.release("--lws-version", bad)
    with pytest.raises(versions.BadVersion, match=r"give one like v1\.36\.3"):
        versions.release("--kubernetes-version", "v0.36.3", major=1)


def test_a_version_set_keeps_the_pinned_etcd_only_for_the_pinned_kubernetes() -> None:
    assert versions.version_set() == versions.PINNED
    other = versions.version_set(kubernetes="v1.35.4", lws="v0.8.0")
    assert (other.kubernetes, other.lws, other.etcd, other.kubectl_minor) == ("v1.35.4", "v0.8.0", "", "1.35")
    assert other.control_plane_key == "k8s-v1.35.4_kwok-v0.8.0" and other.lws_key == "lws-v0.8.0"


def _executable(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _fake_lws(cache: Path, version: str, stamp: str | None = None) -> Path:
    root = cache / "testbed" / f"lws-{version}"
    _executable(root / "bin" / "lws-manager")
    (root / "share" / "crd").mkdir(parents=True)
    (root / "share" / "crd" / "lws.yaml").write_text("kind: CustomResourceDefinition\n")
    (root / "share" / "webhook").mkdir(parents=True)
    (root / "share" / "webhook" / "manifests.yaml").write_text("")
    (root / "share" / "rbac").mkdir(parents=True)
    (root / "share" / "rbac" / "kustomize.json").write_text("{}")
    (root / ".complete.json").write_text(json.dumps({"lws": stamp or version}))
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LWS_SUITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_an_lws_build_is_found_only_when_complete_and_stamped_with_its_version(cache: Path) -> None:
    assert lws_build.find_lws("v0.8.0") is None
    root = _fake_lws(cache, "v0.8.0")
    found = lws_build.find_lws("v0.8.0")
    assert found is not None and found.manager == root / "bin" / "lws-manager"
    _fake_lws(cache, "v0.7.0", stamp="v0.9.0")  # a directory renamed by hand is not trusted
    assert lws_build.find_lws("v0.7.0") is None
    (root / "share" / "rbac" / "kustomize.json").unlink()  # an earlier build without its RBAC: built again
    assert lws_build.find_lws("v0.8.0") is None


def test_the_control_plane_of_the_earlier_combined_layout_is_adopted_with_any_lws(cache: Path) -> None:
    legacy = cache / "testbed" / "k8s-v1.36.3_etcd-v3.6.8_kwok-v0.8.0_lws-v0.9.0" / "bin"
    for name in (*build.CONTROL_PLANE, "lws-manager"):
        _executable(legacy / name)
    stamp = {"kubernetes": "v1.36.3", "etcd": "v3.6.8", "kwok": "v0.8.0", "lws": "v0.9.0"}
    (legacy / build.STAMP).write_text(json.dumps(stamp))
    _fake_lws(cache, "v0.7.0")
    built = build.find_built(versions.version_set(lws="v0.7.0"))
    assert built is not None and built.bin_dir == legacy
    assert built["lws-manager"] == cache / "testbed" / "lws-v0.7.0" / "bin" / "lws-manager"
    assert built["kube-apiserver"] == legacy / "kube-apiserver"
    assert build.find_built(versions.version_set(kubernetes="v1.35.4", lws="v0.7.0")) is None
    assert build.find_built(versions.version_set(lws="v0.8.0")) is None  # that LWS is not built


def _fake_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: dict[str, str]) -> None:
    """A `go` on PATH that answers `go mod download -json` as the proxy here does."""
    go = tmp_path / "fakebin" / "go"
    _executable(go)
    go.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(answer)}\nEOF\nexit 1\n")
    monkeypatch.setenv("PATH", f"{go.parent}{os.pathsep}{os.environ['PATH']}")


REFUSED = {
    "Path": "sigs.k8s.io/lws",
    "Version": "v0.10.0",
    "Error": "sigs.k8s.io/lws@v0.10.0: reading https://proxy.golang.org/sigs.k8s.io/lws/@v/v0.10.0.zip: "
    "403 Forbidden\n\tserver response: This module version is not available.",
}


def test_a_refused_version_is_one_line_naming_it_and_what_was_tried(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_go(tmp_path, monkeypatch, REFUSED)
    with pytest.raises(gotool.VersionUnavailable) as caught:
        lws_build.ensure_lws("v0.10.0", progress=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "sigs.k8s.io/lws v0.10.0 cannot be had: `go mod download sigs.k8s.io/lws@v0.10.0`"
    )
    assert "403 Forbidden" in message and "choose another version" in message
    assert not (cache / "testbed" / "lws-v0.10.0").exists()  # nothing half-built stays


def test_the_testbed_cli_says_a_refused_version_in_one_line_with_exit_3(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_go(tmp_path, monkeypatch, REFUSED)
    proc = subprocess.run(
        [sys.executable, "-m", "testbed", "build", "--lws-version", "v0.10.0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("testbed: sigs.k8s.io/lws v0.10.0 cannot be had")


def test_the_testbed_cli_refuses_a_version_that_is_not_a_release_with_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "testbed", "up", "--kubernetes-version", "1.36"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "testbed: --kubernetes-version '1.36': not a release version; give one like v1.36.3 "
        "(see `python -m testbed --help`)"
    )


def _config_tree(root: Path) -> Path:
    """The parts of an LWS release's config/ tree the testbed reads (shaped as sigs.k8s.io/lws@v0.8.0's)."""
    config = root / "config"
    (config / "crd" / "bases").mkdir(parents=True)
    (config / "crd" / "bases" / "leaderworkerset.x-k8s.io_leaderworkersets.yaml").write_text("kind: X\n")
    (config / "webhook").mkdir(parents=True)
    for name in ("manifests.yaml", "mutating-patch.yaml", "validating-patch.yaml"):
        (config / "webhook" / name).write_text("")
    (config / "default").mkdir(parents=True)
    (config / "default" / "kustomization.yaml").write_text("namespace: lws-system\nnamePrefix: lws-\n")
    (config / "rbac").mkdir(parents=True)
    (config / "rbac" / "kustomization.yaml").write_text(
        "resources:\n- service_account.yaml\n- role.yaml\n- role_binding.yaml\n- leader_election_role_binding.yaml\n"
    )
    (config / "rbac" / "service_account.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: controller-manager\n  namespace: system\n"
    )
    (config / "rbac" / "role.yaml").write_text(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: manager-role\n"
        "rules: []\n"
    )
    binding = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nroleRef:\n"
        "  apiGroup: rbac.authorization.k8s.io\n  kind: {ref_kind}\n  name: {ref}\nsubjects:\n"
        "- kind: ServiceAccount\n  name: controller-manager\n  namespace: system\n"
    )
    (config / "rbac" / "role_binding.yaml").write_text(
        binding.format(
            kind="ClusterRoleBinding", name="manager-rolebinding", ref_kind="ClusterRole", ref="manager-role"
        )
    )
    # its Role is not in this tree: the reference is left as it is, as kustomize leaves it
    (config / "rbac" / "leader_election_role_binding.yaml").write_text(
        binding.format(
            kind="RoleBinding", name="leader-election-rolebinding", ref_kind="Role", ref="elsewhere"
        )
    )
    return root


def test_the_release_rbac_is_rendered_as_kustomize_does(tmp_path: Path) -> None:
    share = tmp_path / "share"
    lws_build.copy_config(_config_tree(tmp_path / "module"), share)
    assert json.loads((share / "rbac" / "kustomize.json").read_text())["namePrefix"] == "lws-"
    docs = {(d["kind"], d["metadata"]["name"]): d for d in lws_rbac.render(share / "rbac")}
    assert docs[("ServiceAccount", "lws-controller-manager")]["metadata"]["namespace"] == "lws-system"
    assert "namespace" not in docs[("ClusterRole", "lws-manager-role")]["metadata"]
    cluster_binding = docs[("ClusterRoleBinding", "lws-manager-rolebinding")]
    assert cluster_binding["roleRef"]["name"] == "lws-manager-role"
    assert cluster_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "lws-controller-manager", "namespace": "lws-system"}
    ]
    role_binding = docs[("RoleBinding", "lws-leader-election-rolebinding")]
    assert (
        role_binding["metadata"]["namespace"] == "lws-system"
        and role_binding["roleRef"]["name"] == "elsewhere"
    )
    assert lws_rbac.service_account(share / "rbac") == ("lws-system", "lws-controller-manager")


def test_the_controller_kubeconfig_has_the_cluster_and_the_token_not_the_admin_certificate() -> None:
    admin = yaml.safe_load(
        "apiVersion: v1\nkind: Config\ncurrent-context: testbed\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', certificate-authority: /ca.crt}}]\n"
        "contexts: [{name: testbed, context: {cluster: c, user: admin}}]\n"
        "users: [{name: admin, user: {client-certificate: /admin.crt, client-key: /admin.key}}]\n"
    )
    config = lws_rbac.token_kubeconfig(admin, "TOKEN", "lws")
    assert config["clusters"] == admin["clusters"]
    assert config["users"] == [{"name": "lws", "user": {"token": "TOKEN"}}]
    assert config["current-context"] == "lws"


def test_a_kubernetes_release_module_replaces_its_staging_modules_with_their_release_and_names_its_etcd() -> (
    None
):
    from testbed import gomod

    kubernetes_gomod = (
        "module k8s.io/kubernetes\nrequire (\n\tk8s.io/api v0.0.0\n\tk8s.io/client-go v0.0.0\n"
        "\tgo.etcd.io/etcd/server/v3 v3.6.5 // indirect\n)\n"
    )
    assert gomod.etcd_of(kubernetes_gomod) == "v3.6.5"
    assert gomod.staging_of("v1.35.4") == "v0.35.4"
    rendered = gomod.render(kubernetes_gomod, "v1.35.4", "v3.6.5", "v0.35.4")
    assert "k8s.io/kubernetes v1.35.4" in rendered and "go.etcd.io/etcd/server/v3 v3.6.5" in rendered
    assert "\tk8s.io/api => k8s.io/api v0.35.4" in rendered
    assert "\tk8s.io/client-go => k8s.io/client-go v0.35.4" in rendered


def test_upgrading_a_testbed_that_is_not_running_says_to_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testbed.cluster import TestbedError
    from testbed.lws_upgrade import upgrade_lws

    monkeypatch.setenv("LWS_SUITE_STATE", str(tmp_path / "state"))
    with pytest.raises(
        TestbedError, match=r"testbed 'nope' is not running; start it first \(python -m testbed up"
    ):
        upgrade_lws("nope", "v0.8.0", progress=lambda _: None)
