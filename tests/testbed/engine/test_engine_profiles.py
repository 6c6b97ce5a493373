"""vLLM versions from image tags, and what each version does differently."""

from __future__ import annotations

import pytest

from testbed.engine.profiles import (
    CURRENT_VERSION,
    SCRIPT_ONLINE,
    SCRIPT_RAY,
    Profile,
    parse_version,
    resolve_profile,
    version_from_image,
)


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("vllm/vllm-openai:v0.10.1", (0, 10, 1)),
        ("docker.io/vllm/vllm-openai:latest", CURRENT_VERSION),
        ("vllm/vllm-openai", CURRENT_VERSION),
        ("registry:5000/vllm/vllm-openai:v0.8.5.post1", (0, 8, 5)),
        ("vllm/vllm-openai@sha256:abc", CURRENT_VERSION),
        ("vllm/vllm-openai:nightly-1234abcd", CURRENT_VERSION),
        ("vllm/vllm-openai:0.6.3", (0, 6, 3)),
    ],
)
def test_image_tag_picks_the_version(image: str, version: tuple[int, int, int]) -> None:
    assert version_from_image(image) == version


def test_explicit_profile_overrides_the_image() -> None:
    assert resolve_profile(profile="v0.10.1", image="vllm/vllm-openai:latest").version == (0, 10, 1)
    assert resolve_profile(profile=None, image="vllm/vllm-openai:v0.9.2").version == (0, 9, 2)
    assert resolve_profile(profile="legacy", image=None).version == (0, 6, 3)
    with pytest.raises(ValueError, match=r"e\.g\. v0\.10\.1"):
        parse_version("banana")


def test_launch_script_location_by_era() -> None:
    assert Profile.for_version((0, 6, 3)).multi_node_script is None
    assert Profile.for_version((0, 10, 1)).multi_node_script == SCRIPT_ONLINE
    assert Profile.for_version(CURRENT_VERSION).multi_node_script == SCRIPT_RAY


def test_world_size_refusal_by_era() -> None:
    assert Profile.for_version((0, 10, 1)).world_size_error(16, 8) is None  # Ray picked automatically
    assert (
        Profile.for_version((0, 11, 1)).world_size_error(16, 8)
        == "Tensor parallel size (16) cannot be larger than the number of available GPUs (8)."
    )
    msg = Profile.for_version(CURRENT_VERSION).world_size_error(16, 8)
    assert msg is not None and msg.startswith(
        "World size (16) is larger than the number of available GPUs (8) in this node."
    )
    assert "set '--distributed-executor-backend ray'" in msg


@pytest.mark.parametrize(
    ("version", "line"),
    [
        ((0, 6, 3), "Loading model weights took 47.2400 GB"),
        ((0, 8, 0), "Model loading took 47.2400 GB and 98.500000 seconds"),
        ((0, 10, 1), "Model loading took 47.2400 GiB and 98.500000 seconds"),
        ((0, 11, 1), "Model loading took 47.2400 GiB memory and 98.500000 seconds"),
        (CURRENT_VERSION, "Model loading took 47.24 GiB memory and 98.500000 seconds"),
    ],
)
def test_weight_loading_line_by_era(version: tuple[int, int, int], line: str) -> None:
    assert Profile.for_version(version).weights_line(47.24, 98.5) == line


def test_log_format_override_selects_legacy_or_current_lines() -> None:
    assert (
        Profile.for_version((0, 10, 1), "legacy").weights_line(1.5, 2.0)
        == "Loading model weights took 1.5000 GB"
    )
    assert (
        Profile.for_version((0, 6, 3), "current").weights_line(1.5, 2.0)
        == "Model loading took 1.5000 GiB memory and 2.000000 seconds"
    )
    with pytest.raises(ValueError, match="auto, legacy or current"):
        Profile.for_version((0, 6, 3), "fancy")


def test_server_start_line_by_era() -> None:
    assert Profile.for_version((0, 6, 3)).api_server_line("0.0.0.0", 8080) is None
    assert (
        Profile.for_version((0, 8, 5)).api_server_line("0.0.0.0", 8080)
        == "Starting vLLM API server on http://0.0.0.0:8080"
    )
    assert (
        Profile.for_version((0, 10, 1)).api_server_line("0.0.0.0", 8080)
        == "Starting vLLM API server 0 on http://0.0.0.0:8080"
    )
    assert (
        Profile.for_version(CURRENT_VERSION).api_server_line("0.0.0.0", 8080)
        == "Starting vLLM server on http://0.0.0.0:8080"
    )


@pytest.mark.parametrize(
    ("profile", "image", "device"),
    [
        ("0.32.0+cpu", None, "cpu"),  # what the CPU build's `vllm --version` prints
        ("v0.32.0-cpu", None, "cpu"),
        (None, "vllm/vllm-openai-cpu:v0.32.0", "cpu"),
        (None, "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.32.0", "cpu"),
        ("0.32.0", "vllm/vllm-openai-cpu:v0.32.0", "cuda"),  # --profile wins, device included
        (None, "vllm/vllm-openai:v0.32.0", "cuda"),
        ("latest", None, "cuda"),
    ],
)
def test_the_cpu_build_is_a_device_named_by_the_profile_or_the_image(
    profile: str | None, image: str | None, device: str
) -> None:
    resolved = resolve_profile(profile=profile, image=image)
    assert resolved.version == (0, 32, 0) or profile == "latest"
    assert resolved.device == device
    assert resolved.version_text == "0.32.0" or profile == "latest"  # /version shows no "+cpu"
