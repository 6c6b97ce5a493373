"""The simulator's prefix cache on its own: chained block hashes, vLLM's last-token rule, LRU eviction."""

from __future__ import annotations

import pytest

from testbed.engine.prefix_cache import PrefixCache


def test_hits_are_the_longest_cached_run_of_whole_blocks_from_the_start() -> None:
    cache = PrefixCache(block_size=4, capacity_blocks=100)
    assert cache.admit(list(range(10))) == 0
    assert cache.admit(list(range(10))) == 8  # blocks [0:4] and [4:8]; 9 tokens may hit, 2 whole blocks
    assert cache.admit([*range(6), 99, 98, 97]) == 4  # the second block differs
    assert cache.admit(list(range(8))) == 4  # 7 tokens may hit: the 2nd block ends on the last token
    assert (cache.queries, cache.hits) == (37, 16)


def test_the_least_recently_used_blocks_are_evicted_first() -> None:
    cache = PrefixCache(block_size=2, capacity_blocks=3)
    cache.admit([1, 2, 3, 4, 5])  # blocks (1,2), (3,4)
    cache.admit([7, 8, 9, 10, 11])  # blocks (7,8), (9,10): (1,2) is the oldest and goes
    assert cache.admit([1, 2, 3, 4, 5]) == 0


def test_a_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="block_size"):
        PrefixCache(block_size=0, capacity_blocks=1)
