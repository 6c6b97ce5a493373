"""Which vLLM release an image holds, and what its multi-node launch needs.

Facts, from vLLM's pull requests and the version bumps downstream that date its releases (each cited):
- multi-node-serving.sh first appeared at examples/online_serving/ in vLLM PR #12913 (2025-02-20),
  so v0.7.2 and older lack it; v0.7.3 shipped that week and may or may not have it.
- vLLM PR #41084 "Resettle examples" (2026-05-08) moved it to examples/ray_serving/. The research
  maps that PR to no release. Downstream version-bump PRs date the releases around it: v0.18.0 was
  out by 2026-04-02 (llm-d/llm-d#1059), v0.21.0 by 2026-05-23, bumped from v0.20.1
  (timothystewart6/vllm-gb10#9), v0.22.1 by 2026-06-05 (vllm-project/vllm-metal#425). So v0.19
  and older keep the legacy path, v0.22 and newer have the new path, and v0.20-v0.21 are unknown.
- vLLM PR #25775 (2025-10-30, first released in v0.11.1) removed the automatic fallback to Ray when
  the world size exceeds the node's GPUs. v0.11.0 and older choose Ray on their own.
  Since then `--distributed-executor-backend ray` is required.
- The newest release in the workplace package list is 0.33.0 (2026-11). A floating tag (`latest`,
  `nightly`) is taken to be at least that new.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

LEGACY_SCRIPT = "examples/online_serving/multi-node-serving.sh"
CURRENT_SCRIPT = "examples/ray_serving/multi-node-serving.sh"


class Release(BaseModel):
    """A vLLM release number, e.g. 0.10.1. Compares as a tuple."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    major: int
    minor: int
    patch: int = 0

    def key(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def _r(text: str) -> Release:
    major, minor, patch = (int(p) for p in text.split("."))
    return Release(major=major, minor=minor, patch=patch)


SCRIPT_ADDED_CERTAIN = _r("0.8.0")  # v0.7.3 is uncertain (PR #12913 landed the week it shipped)
LEGACY_SCRIPT_LAST_CERTAIN = _r("0.19.999")  # v0.20.x and v0.21.x: around PR #41084, unknown
CURRENT_SCRIPT_FIRST_CERTAIN = _r("0.22.0")
RAY_FLAG_REQUIRED_FROM = _r("0.11.1")  # PR #25775
NEWEST_KNOWN = _r("0.33.0")

# Images that really are vLLM's OpenAI server builds (docker.io/vllm/vllm-openai, mirrors of it).
_VLLM_REPOSITORY = re.compile(r"(^|/)vllm-openai$")
_VERSION_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
_FLOATING_TAGS = {"latest", "nightly", ""}


class ScriptLayout(StrEnum):
    """Where an image keeps multi-node-serving.sh."""

    NONE = "none"  # too old to have it
    LEGACY = "legacy"  # examples/online_serving/
    CURRENT = "current"  # examples/ray_serving/
    UNKNOWN = "unknown"  # a release around a move, or a version we cannot read


class ImageRelease(BaseModel):
    """What an image reference says about the vLLM inside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str
    repository: str
    tag: str | None
    is_vllm: bool
    floating: bool
    # The release the image holds. For a floating tag, this is the newest release known here.
    release: Release | None

    @property
    def script_layout(self) -> ScriptLayout:
        if self.release is None:
            return ScriptLayout.UNKNOWN
        key = self.release.key()
        if key < SCRIPT_ADDED_CERTAIN.key():
            return ScriptLayout.NONE if key < (0, 7, 3) else ScriptLayout.UNKNOWN
        if key <= LEGACY_SCRIPT_LAST_CERTAIN.key():
            return ScriptLayout.LEGACY
        if key >= CURRENT_SCRIPT_FIRST_CERTAIN.key():
            return ScriptLayout.CURRENT
        return ScriptLayout.UNKNOWN

    @property
    def needs_ray_flag(self) -> bool | None:
        """True if a world size above the node's GPUs needs `--distributed-executor-backend ray`."""
        if self.release is None:
            return None
        return self.release.key() >= RAY_FLAG_REQUIRED_FROM.key()

    def describe(self) -> str:
        if self.floating:
            return f"{self.image} (floating tag: today a vLLM >= {self.release} build)"
        return self.image


def image_release(image: str) -> ImageRelease:
    """Read the vLLM release from an image reference; non-vLLM images get release None."""
    name, digest_sep, _digest = image.partition("@")
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    tag: str | None
    if colon > last_slash:
        repository, tag = name[:colon], name[colon + 1 :]
    else:
        repository, tag = name, ("" if not digest_sep else None)
    is_vllm = bool(_VLLM_REPOSITORY.search(repository))
    release: Release | None = None
    floating = False
    if is_vllm and tag is not None:
        match = _VERSION_TAG.match(tag)
        if match:
            release = Release(
                major=int(match.group(1)), minor=int(match.group(2)), patch=int(match.group(3) or 0)
            )
        elif tag in _FLOATING_TAGS:
            floating = True
            release = NEWEST_KNOWN
    return ImageRelease(
        image=image, repository=repository, tag=tag, is_vllm=is_vllm, floating=floating, release=release
    )
