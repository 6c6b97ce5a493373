"""The user ids a testbed's pods run under (podnet.py says why each pod has one): a range of its own per testbed.

A testbed claims its range when it starts, as root, and records it in its state directory (`pod-uids.json`);
the bridge gives each new pod the next id of the range and never wraps (`Addresses`); teardown kills the
processes of the recorded range only, then releases it. A range is free when no process on the machine runs
under any of its ids, no `/etc/subuid` or `/etc/subgid` entry overlaps it (those ids belong to users' rootless
containers), and no other testbed holds a claim on it (a file per range in the machine's claims directory, `claims_dir()`,
written under a lock on that directory, naming the testbed's state directory; a claim whose testbed's record is gone is stale).
No free range left is an error that says so, never a range shared with someone else.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

UID_BASE = 300_000
UIDS_PER_TESTBED = 1000
UID_LIMIT = 2_000_000_000  # below 2**31: tools that read uids as signed 32-bit numbers stay right
RECORD = "pod-uids.json"
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


class PodUidsExhausted(RuntimeError):
    """No free range of user ids (or no id left in a testbed's range); the message says what to do."""


def subid_ranges(files: Iterable[Path] = SUBID_FILES) -> list[range]:
    """The ranges `/etc/subuid` and `/etc/subgid` give users (`name:start:count` per line)."""
    found = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                start = int(parts[1])
                found.append(range(start, start + int(parts[2])))
    return found


def _overlaps(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop


def recorded(state_dir: Path) -> range | None:
    """The range a testbed recorded; None when it recorded none (not root, or not started)."""
    try:
        raw = json.loads((state_dir / RECORD).read_text())
        return range(int(raw["start"]), int(raw["stop"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def _locked(claims: Path) -> Iterator[None]:
    """The claims directory itself is the lock (flock on its descriptor): no lock file is left behind."""
    claims.mkdir(parents=True, exist_ok=True)
    fd = os.open(claims, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _claim_holder(claim: Path) -> Path | None:
    """The state directory of the testbed that holds this claim, while that testbed's record names it."""
    try:
        holder = Path(json.loads(claim.read_text())["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    held = recorded(holder)
    return holder if held is not None and held.start == int(claim.name) else None


def allocate(
    state_dir: Path,
    claims: Path,
    process_uids: Iterable[int],
    *,
    subids: Iterable[range] | None = None,
    size: int = UIDS_PER_TESTBED,
    limit: int = UID_LIMIT,
) -> range:
    """Claim a free range of `size` ids for the testbed whose state is `state_dir`, record it there, and
    return it (the recorded one again if it already has one). `process_uids`: the real user id of every
    process on the machine now; `claims`: where testbeds claim their ranges."""
    mine = recorded(state_dir)
    if mine is not None:
        return mine
    busy = sorted(set(process_uids))
    taken = list(subid_ranges() if subids is None else subids)
    with _locked(claims):
        for start in range(UID_BASE, limit - size + 1, size):
            candidate = range(start, start + size)
            if any(_overlaps(candidate, r) for r in taken) or any(u in candidate for u in busy):
                continue
            claim = claims / str(start)
            if claim.exists() and _claim_holder(claim) is not None:
                continue
            claim.write_text(json.dumps({"state_dir": str(state_dir)}))
            state_dir.mkdir(parents=True, exist_ok=True)
            tmp = state_dir / f"{RECORD}.tmp"
            tmp.write_text(json.dumps({"start": candidate.start, "stop": candidate.stop}))
            tmp.replace(state_dir / RECORD)
            return candidate
    raise PodUidsExhausted(
        f"no free range of {size} user ids between {UID_BASE} and {limit}: each is used by a running process, "
        f"an /etc/subuid or /etc/subgid entry, or another testbed (claims in {claims}); stop the testbeds you no "
        "longer need (python -m testbed down --name NAME)"
    )


def release(state_dir: Path, claims: Path) -> None:
    """Give the testbed's range back (teardown, after its processes were killed)."""
    mine = recorded(state_dir)
    if mine is None:
        return
    with _locked(claims):
        claim = claims / str(mine.start)
        if _claim_holder(claim) == state_dir:
            claim.unlink(missing_ok=True)
        (state_dir / RECORD).unlink(missing_ok=True)


class Addresses:
    """Pod addresses in 127.42.0.0/16 and per-pod user ids from the testbed's range, never reused while the
    bridge lives (a new incarnation of a pod name gets a new address, as a new pod gets a new IP). Ids do not
    wrap: once the range is used up, a new pod is refused with a message saying so."""

    def __init__(self, uids: range) -> None:
        self._uids = uids
        self._next = 0
        self._by_uid: dict[str, tuple[str, int]] = {}

    def of(self, pod_uid: str) -> tuple[str, int]:
        """(loopback address, user id) of a pod, allocated on first ask."""
        if pod_uid not in self._by_uid:
            if self._next >= len(self._uids):
                raise PodUidsExhausted(
                    f"the testbed has given all {len(self._uids)} pod user ids of its range "
                    f"{self._uids.start}-{self._uids.stop - 1} to pods; restart the testbed "
                    "(python -m testbed down, then up) to start over"
                )
            n = self._next
            self._next += 1
            address = f"127.42.{n // 254 % 256}.{n % 254 + 1}"  # .1 to .254 in each /24
            self._by_uid[pod_uid] = (address, self._uids[n])
        return self._by_uid[pod_uid]


CLAIMS_ENV = "LWS_SUITE_UID_CLAIMS"


def claims_dir() -> Path:
    """Where testbeds claim their ranges: one directory for the whole machine, not one per state root. User ids
    are the machine's: testbeds of two state roots (LWS_SUITE_STATE; the suite's own tests run nested testbeds
    that way) each claimed the same range from a directory of their own while the other's pods ran no process,
    then counted and killed each other's pod processes as their own. `$LWS_SUITE_UID_CLAIMS`, else
    /run/lws-vllm-suite/pod-uids (a tmpfs: claims are of running testbeds and go with a reboot), else the
    temporary directory's lws-vllm-suite-pod-uids."""
    given = os.environ.get(CLAIMS_ENV)
    if given:
        return Path(given)
    run = Path("/run")
    if run.is_dir() and os.access(run, os.W_OK):
        return run / "lws-vllm-suite" / "pod-uids"
    return Path(tempfile.gettempdir()) / "lws-vllm-suite-pod-uids"
