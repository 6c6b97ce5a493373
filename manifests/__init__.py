"""The reference LWS manifest for vLLM, named topologies, the renderer and the preflight lint.

Imports nothing else of ours. The API fixtures call:

    render(topology, overrides) -> list[dict]       # LWS + leader Service
    to_yaml(objects) -> str
    load_manifest(path) -> Manifest                 # --manifest FILE; raises ManifestError (one line)
    Manifest.from_objects(render(...))              # the same typed form for a rendered topology
    describe(manifest) -> ManifestInfo              # TP, PP, size, GPUs, model, image, port, selector...
    lint(manifest, capacity=None, dry_run=None) -> LintReport
"""

from manifests.describe import ManifestInfo, describe
from manifests.dry_run import ClusterUnreachable, KubectlDryRun, KubectlMissing
from manifests.lint import Finding, LintReport, NodeCapacity, lint
from manifests.load import load_manifest, load_variant, parse_manifest
from manifests.manifest import Manifest, ManifestError
from manifests.profiles import PROFILES, LaunchProfile, UnknownProfile, get_profile
from manifests.redact import is_secret_env, redact_objects
from manifests.render import Overrides, render, to_yaml
from manifests.topologies import DEFAULT_TOPOLOGY, TOPOLOGIES, Topology, UnknownTopology, get_topology
from manifests.vllm_releases import ImageRelease, image_release

__all__ = [
    "DEFAULT_TOPOLOGY",
    "PROFILES",
    "TOPOLOGIES",
    "ClusterUnreachable",
    "Finding",
    "ImageRelease",
    "KubectlDryRun",
    "KubectlMissing",
    "LaunchProfile",
    "LintReport",
    "Manifest",
    "ManifestError",
    "ManifestInfo",
    "NodeCapacity",
    "Overrides",
    "Topology",
    "UnknownProfile",
    "UnknownTopology",
    "describe",
    "get_profile",
    "get_topology",
    "image_release",
    "is_secret_env",
    "lint",
    "load_manifest",
    "load_variant",
    "parse_manifest",
    "redact_objects",
    "render",
    "to_yaml",
]
