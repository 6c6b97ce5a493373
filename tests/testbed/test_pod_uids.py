"""Each testbed's pods run under user ids of a range the testbed claims for itself: none a process uses, none an
/etc/subuid or /etc/subgid entry gives a user, none another testbed holds; recorded in its state, released at
teardown, never wrapped round (testbed/bridge/pod_uids.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.bridge import pod_uids, podnet
from testbed.bridge.pod_uids import (
    CLAIMS_ENV,
    UID_BASE,
    UIDS_PER_TESTBED,
    Addresses,
    PodUidsExhausted,
    allocate,
    claims_dir,
    release,
)


def test_a_range_is_recorded_in_the_testbeds_state_and_the_same_range_comes_back(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    ids = allocate(tmp_path / "tb-a", claims, [], subids=[])
    assert ids == range(UID_BASE, UID_BASE + UIDS_PER_TESTBED)
    assert pod_uids.recorded(tmp_path / "tb-a") == ids
    assert json.loads((tmp_path / "tb-a" / pod_uids.RECORD).read_text()) == {
        "start": ids.start,
        "stop": ids.stop,
    }
    assert allocate(tmp_path / "tb-a", claims, [], subids=[]) == ids  # asked again: its own range


def test_two_testbeds_never_share_a_range_and_a_released_range_is_free_again(tmp_path: Path) -> None:
    claims = tmp_path / "claims"
    a = allocate(tmp_path / "tb-a", claims, [], subids=[])
    b = allocate(tmp_path / "tb-b", claims, [], subids=[])
    assert set(a).isdisjoint(b)
    release(tmp_path / "tb-a", claims)
    assert pod_uids.recorded(tmp_path / "tb-a") is None
    assert allocate(tmp_path / "tb-c", claims, [], subids=[]) == a
    # one claim file per held range, and no lock file besides them
    assert sorted(p.name for p in claims.iterdir()) == sorted({str(a.start), str(b.start)})


def test_a_claim_whose_testbed_is_gone_is_stale(tmp_path: Path) -> None:
    """A testbed's state removed by hand (its record with it) does not hold its range for ever."""
    claims = tmp_path / "claims"
    a = allocate(tmp_path / "tb-a", claims, [], subids=[])
    (tmp_path / "tb-a" / pod_uids.RECORD).unlink()
    assert allocate(tmp_path / "tb-b", claims, [], subids=[]) == a


def test_ranges_used_by_a_process_or_a_subuid_or_subgid_entry_are_skipped(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    # The default ranges useradd gives users 4 and 5 (100000 + 65536 * k), over the first candidate ranges.
    subuid.write_text("u4:296144:65536\n")
    subgid.write_text("u5:361680:65536\n# not an entry\n")
    taken = pod_uids.subid_ranges([subuid, subgid, tmp_path / "missing"])
    assert taken == [range(296144, 361680), range(361680, 427216)]
    busy = [427_500]  # a process runs under an id of the next range
    ids = allocate(tmp_path / "tb", tmp_path / "claims", busy, subids=taken)
    assert ids == range(428_000, 429_000)
    assert all(ids.start >= r.stop or ids.stop <= r.start for r in taken) and 427_500 not in ids


def test_no_free_range_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    limit = UID_BASE + 2 * UIDS_PER_TESTBED
    allocate(tmp_path / "tb-a", tmp_path / "claims", [], subids=[], limit=limit)
    allocate(tmp_path / "tb-b", tmp_path / "claims", [], subids=[], limit=limit)
    with pytest.raises(PodUidsExhausted, match=r"no free range of 1000 user ids .*\(python -m testbed down"):
        allocate(tmp_path / "tb-c", tmp_path / "claims", [], subids=[], limit=limit)
    assert pod_uids.recorded(tmp_path / "tb-c") is None


def test_pod_ids_never_wrap_round_the_range() -> None:
    addresses = Addresses(range(400_000, 400_003))
    assert [addresses.of(f"pod-{n}")[1] for n in range(3)] == [400_000, 400_001, 400_002]
    with pytest.raises(PodUidsExhausted, match="given all 3 pod user ids of its range 400000-400002"):
        addresses.of("pod-3")
    assert addresses.of("pod-1")[1] == 400_001  # a pod that has one keeps it


def test_teardown_kills_the_recorded_ids_processes_and_no_others(tmp_path: Path) -> None:
    """`kill_testbed_leftovers` with the testbed's recorded range: a process of an id in it is killed, one of an
    id just outside (another testbed's, or a user's) is not."""
    if os.geteuid() != 0:
        pytest.skip("running processes under other user ids needs root, as the testbed's teardown does")
    ids = allocate(tmp_path / "tb", tmp_path / "claims", podnet.process_uids().values())
    outside = ids.stop  # the first id of the next range: not this testbed's
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    mine = subprocess.Popen([*podnet.sandbox_prefix(ids[5]), *sleeper])
    other = subprocess.Popen([*podnet.sandbox_prefix(outside), *sleeper])
    try:
        name = f"uids-{ids.start}"
        assert podnet.kill_testbed_leftovers(name, pod_uids.recorded(tmp_path / "tb") or range(0)) == 1
        assert mine.wait(timeout=10) == -9 and other.poll() is None
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait()
        release(tmp_path / "tb", tmp_path / "claims")


def test_testbeds_of_two_state_roots_claim_from_one_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """User ids are the machine's: a testbed under another LWS_SUITE_STATE (the suite's own nested runs) must see
    the claims of this one, or both take the same range and count and kill each other's pod processes."""
    monkeypatch.delenv(CLAIMS_ENV, raising=False)
    monkeypatch.setenv("LWS_SUITE_STATE", str(tmp_path / "a"))
    first = claims_dir()
    monkeypatch.setenv("LWS_SUITE_STATE", str(tmp_path / "b"))
    assert claims_dir() == first and tmp_path not in first.parents, first
    monkeypatch.setenv(CLAIMS_ENV, str(tmp_path / "mine"))
    assert claims_dir() == tmp_path / "mine"
