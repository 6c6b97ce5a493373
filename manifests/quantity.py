"""Kubernetes resource quantities (e.g. 15Gi, 500M, 1.5Gi) as bytes."""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")

GI = 2**30


def parse_bytes(value: object) -> int | None:
    """Bytes in a quantity, or None if it is not one we can read."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    return int(float(match.group(1)) * _SUFFIX[match.group(2) or ""])
