"""Loading `--manifest FILE`, image releases, and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifests import ManifestError, image_release, load_manifest, parse_manifest, redact_objects, render
from manifests.vllm_releases import ScriptLayout

LWS = "apiVersion: leaderworkerset.x-k8s.io/v1\nkind: LeaderWorkerSet\nmetadata: {name: a}\nspec: {}\n"


def test_bad_input_gets_one_line_saying_what_is_wrong(tmp_path: Path) -> None:
    cases = {
        "missing": (None, r"missing\.yaml: no such file"),
        "not-yaml": ("a: [1, 2\n", r"not valid YAML at line 2"),
        "no-lws": (
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n",
            r"no LeaderWorkerSet .* found: Service/s",
        ),
        "two-lws": (LWS + "---\n" + LWS, r"2 LeaderWorkerSets in one file"),
        "scalar": ("just text\n", r"YAML document 1 is a str, not a Kubernetes object"),
        "empty": ("", r"no LeaderWorkerSet .* found: no objects"),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / ("missing.yaml" if text is None else f"{name}.yaml")
        if text is not None:
            path.write_text(text)
        with pytest.raises(ManifestError, match=pattern) as caught:
            load_manifest(path)
        assert "\n" not in str(caught.value), name


def test_a_list_and_extra_objects_are_accepted_and_the_service_is_found() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: other}, spec: {selector: {app: x}}}\n"
        "- {apiVersion: v1, kind: Service, metadata: {name: mine},"
        " spec: {selector: {leaderworkerset.sigs.k8s.io/name: a}}}\n"
        "---\n" + LWS
    )
    manifest = parse_manifest(text)
    assert manifest.lws_name == "a"
    assert manifest.service is not None and manifest.service["metadata"]["name"] == "mine"
    assert len(manifest.objects) == 4


@pytest.mark.parametrize(
    ("image", "release", "layout", "needs_flag"),
    [
        ("docker.io/vllm/vllm-openai:v0.10.1", "0.10.1", ScriptLayout.LEGACY, False),
        ("vllm/vllm-openai:v0.11.0", "0.11.0", ScriptLayout.LEGACY, False),
        ("vllm/vllm-openai:v0.11.1", "0.11.1", ScriptLayout.LEGACY, True),
        ("vllm/vllm-openai:0.19.1", "0.19.1", ScriptLayout.LEGACY, True),
        ("vllm/vllm-openai:v0.20.1", "0.20.1", ScriptLayout.UNKNOWN, True),
        ("vllm/vllm-openai:v0.22.1", "0.22.1", ScriptLayout.CURRENT, True),
        ("vllm/vllm-openai:v0.7.3", "0.7.3", ScriptLayout.UNKNOWN, False),
        ("vllm/vllm-openai:v0.6.3", "0.6.3", ScriptLayout.NONE, False),
        ("registry.local:5000/mirror/vllm-openai:v0.10.1.1", "0.10.1", ScriptLayout.LEGACY, False),
        ("docker.io/vllm/vllm-openai:latest", "0.33.0", ScriptLayout.CURRENT, True),
        ("vllm/vllm-openai", "0.33.0", ScriptLayout.CURRENT, True),
        ("vllm/vllm-openai@sha256:abc", None, ScriptLayout.UNKNOWN, None),
        ("nvcr.io/nvidia/vllm:26.05-py3", None, ScriptLayout.UNKNOWN, None),
    ],
)
def test_image_releases_map_to_launch_eras(
    image: str, release: str | None, layout: ScriptLayout, needs_flag: bool | None
) -> None:
    info = image_release(image)
    assert (str(info.release) if info.release else None) == release
    assert info.script_layout is layout
    assert info.needs_ray_flag is needs_flag


def test_redaction_hides_token_values_and_secret_data() -> None:
    objects = render()
    container = objects[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "HF_TOKEN", "value": "hf_abcdefghijklmnopqrstuvwxyz"},
        {"name": "MODE", "value": "x"},
    ]
    objects.append(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "t0p"}}
    )
    redacted = redact_objects(objects)
    text = repr(redacted)
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in text and "t0p" not in text
    assert "<redacted, 29 characters>" in text
    assert {"name": "MODE", "value": "x"} in (
        redacted[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["env"]
    )
    assert container["env"][0]["value"].startswith("hf_")  # the input is left alone
