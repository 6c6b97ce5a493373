"""Reading a manifest from YAML: `--manifest FILE` and the shipped reference variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from manifests.manifest import Manifest, ManifestError

REFERENCE_DIR = Path(__file__).parent / "reference"

# Named variants shipped as files: the pinned reference, and the vLLM docs' manifest verbatim.
VARIANTS: dict[str, str] = {
    "reference": "lws.yaml",
    "seed": "seed.yaml",
}


def parse_manifest(text: str, source: str = "<text>") -> Manifest:
    """Parse multi-document YAML holding one LWS (and optionally its Service)."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"{source}: not valid YAML{where}: {problem}") from None
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(
                f"{source}: YAML document {index} is a {type(doc).__name__}, not a Kubernetes object"
            )
        if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            objects.extend(item for item in doc["items"] if isinstance(item, dict))
        else:
            objects.append(doc)
    return Manifest.from_objects(objects, source=source)


def load_manifest(path: str | Path) -> Manifest:
    """Read `--manifest FILE`. Raises ManifestError with one line saying what is wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ManifestError(f"{file}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{file}: not a text file (expected UTF-8 YAML)") from None
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read: {exc.strerror}") from None
    return parse_manifest(text, source=str(file))


def load_variant(name: str) -> Manifest:
    """A shipped variant: `reference` (pinned, Secret token) or `seed` (the vLLM docs' manifest)."""
    try:
        filename = VARIANTS[name]
    except KeyError:
        raise ManifestError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}") from None
    return load_manifest(REFERENCE_DIR / filename)
