"""The lint's rules on the image and its vLLM release: pinned tag, one image, the launch script's path, the Ray
backend flag; each fails on a manifest wrong in its way, and the vLLM docs' seed is explained."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lint_testkit import (
    Broken,
    Objects,
    assert_rule_fires,
    broken_cases,
    run_lint,
    set_images,
    worker,
)

from manifests import Overrides, lint, load_variant, render

BROKEN: list[Broken] = [
    # (id, how it is broken, code, severity, a phrase the message must hold)
    (
        "floating-image",
        set_images("docker.io/vllm/vllm-openai:latest"),
        "image-unpinned",
        "warning",
        "floating tag",
    ),
    (
        "legacy-script-on-new-image",
        set_images("docker.io/vllm/vllm-openai:v0.22.1"),
        "script-path",
        "error",
        "moved by vLLM PR #41084",
    ),
    (
        "legacy-script-on-image-around-the-move",
        set_images("vllm/vllm-openai:v0.21.0"),
        "script-path",
        "warning",
        "cannot tell which it has",
    ),
    (
        "image-older-than-the-script",
        set_images("vllm/vllm-openai:v0.7.2"),
        "script-path",
        "error",
        "predates multi-node-serving.sh",
    ),
    (
        "no-ray-flag-on-0.11.1",
        set_images("docker.io/vllm/vllm-openai:v0.11.1"),
        "ray-backend-flag",
        "error",
        "World size (16) is larger than the number of available GPUs (8)",
    ),
    (
        "leader-and-worker-images-differ",
        lambda o: worker(o).__setitem__("image", "docker.io/vllm/vllm-openai:v0.10.2"),
        "image-mismatch",
        "warning",
        "different images",
    ),
]


@pytest.mark.parametrize(("breakage", "code", "severity", "phrase"), broken_cases(BROKEN))
def test_each_rule_fails_on_a_manifest_wrong_in_its_way(
    breakage: Callable[[Objects], None], code: str, severity: str, phrase: str
) -> None:
    assert_rule_fires(breakage, code, severity, phrase)


def test_boundary_releases_for_the_ray_flag_and_the_script_move() -> None:
    assert run_lint(render(overrides=Overrides(image="docker.io/vllm/vllm-openai:v0.11.0"))).findings == ()
    assert (
        run_lint(
            render(
                overrides=Overrides(
                    image="vllm/vllm-openai:v0.19.1",
                    profile="legacy",
                    extra_args=("--distributed-executor-backend", "ray"),
                )
            )
        ).findings
        == ()
    )
    too_new = run_lint(render(overrides=Overrides(image="vllm/vllm-openai:v0.11.1", profile="current")))
    assert [f.code for f in too_new.errors] == ["script-path"]
    assert "older than vLLM PR #41084" in too_new.errors[0].message


def test_the_seed_is_explained_why_it_no_longer_starts() -> None:
    report = lint(load_variant("seed"))
    assert not report.ok
    by_code = {f.code: f for f in report.findings}
    assert {"image-unpinned", "script-path", "ray-backend-flag", "plain-text-token"} <= set(by_code)
    assert by_code["script-path"].severity == "error"
    assert "leader and worker run /vllm-workspace/examples/online_serving/multi-node-serving.sh" in (
        by_code["script-path"].message
    )
    assert "examples/ray_serving/multi-node-serving.sh" in by_code["script-path"].message
    assert "PR #25775" in by_code["ray-backend-flag"].message
    assert "--distributed-executor-backend ray" in by_code["ray-backend-flag"].message
