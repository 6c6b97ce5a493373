"""vLLM launch profiles: how the leader and worker start Ray and `vllm serve` on a given image era.

Both run /vllm-workspace/<script> leader|worker (the Ray bootstrap from the vLLM docs' manifest), then
`vllm serve` on the leader. They differ in the script's path and in whether Ray is named explicitly
(see vllm_releases.py for the PRs and releases behind each).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from manifests.vllm_releases import CURRENT_SCRIPT, LEGACY_SCRIPT, ScriptLayout, image_release

ProfileName = Literal["legacy", "current", "mp"]
WORKSPACE = "/vllm-workspace"


class LaunchProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ProfileName
    script: str  # relative to /vllm-workspace
    ray_backend_flag: bool  # pass --distributed-executor-backend ray to vllm serve
    executor: Literal["ray", "mp"] = "ray"  # mp: vLLM's own multi-node launch, no Ray, no script
    default_image: str
    summary: str

    @property
    def script_path(self) -> str:
        return f"{WORKSPACE}/{self.script}"


PROFILES: dict[str, LaunchProfile] = {
    "legacy": LaunchProfile(
        name="legacy",
        script=LEGACY_SCRIPT,
        ray_backend_flag=False,
        # The last era with both the legacy path and the implicit Ray fallback: v0.8.0 to v0.11.0.
        default_image="docker.io/vllm/vllm-openai:v0.10.1",
        summary="the vLLM docs' command (examples/online_serving/, implicit Ray): vLLM 0.8.0-0.11.0",
    ),
    "current": LaunchProfile(
        name="current",
        script=CURRENT_SCRIPT,
        ray_backend_flag=True,
        # The first release we can date after vLLM PR #41084 moved the script (see vllm_releases.py).
        default_image="docker.io/vllm/vllm-openai:v0.22.1",
        summary="examples/ray_serving/ with --distributed-executor-backend ray: vLLM 0.22 and newer",
    ),
    # vLLM's own multiprocess multi-node launch: the default of vLLM's LWS page since vLLM PR #39400
    # (2026-06-10). Every pod runs `vllm serve` with --nnodes $(LWS_GROUP_SIZE) and the leader as master;
    # workers run --headless with --node-rank $(LWS_WORKER_INDEX). No Ray, no script.
    "mp": LaunchProfile(
        name="mp",
        script="",
        ray_backend_flag=False,
        executor="mp",
        default_image="docker.io/vllm/vllm-openai:v0.32.0",
        summary="vllm serve --distributed-executor-backend mp --nnodes $(LWS_GROUP_SIZE) on every pod: vLLM 0.32",
    ),
}

DEFAULT_PROFILE: ProfileName = "legacy"


class UnknownProfile(ValueError):
    pass


def get_profile(name: str) -> LaunchProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(
            f"unknown launch profile {name!r}; choose one of: {', '.join(PROFILES)}"
        ) from None


def profile_for_image(image: str) -> LaunchProfile | None:
    """The profile that starts on this image, when its vLLM release tells us; else None."""
    layout = image_release(image).script_layout
    if layout is ScriptLayout.LEGACY:
        # v0.11.1-v0.19 keep the legacy path but need the flag: no profile fits exactly; legacy is
        # closest and lint says what to add.
        return PROFILES["legacy"]
    if layout is ScriptLayout.CURRENT:
        return PROFILES["current"]
    return None


def resolve_launch(profile: str | None, image: str | None) -> tuple[LaunchProfile, str]:
    """Pick the profile and image: each given one decides the other; neither gives the reference's."""
    if profile is not None:
        chosen = get_profile(profile)
        return chosen, image or chosen.default_image
    if image is not None:
        return profile_for_image(image) or PROFILES[DEFAULT_PROFILE], image
    chosen = PROFILES[DEFAULT_PROFILE]
    return chosen, chosen.default_image
