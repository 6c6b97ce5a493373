"""The prefix cache, as vLLM v1's automatic prefix caching counts it (block by block).

A prompt's token ids are cut into full blocks of ``block_size`` tokens; each block's hash chains its parent's,
so a block matches only when everything before it matches too. A request's hit is the longest run of cached
full blocks from the start, within its first ``len - 1`` tokens: vLLM recomputes the last prompt token to
get its logits, so a prompt of exactly 2 blocks that is fully cached hits 1 block
(vllm@v0.32.0:vllm/v1/core/kv_cache_manager.py, ``get_computed_blocks``: ``max_cache_hit_length =
request.num_tokens - 1``). Every prompt token is a query (``vllm:prefix_cache_queries``), every hit token
a hit (``vllm:prefix_cache_hits``; vllm/v1/metrics/stats.py, ``PrefixCacheStats``).

Simplified: a request's full blocks enter the cache when it is admitted (vLLM caches a block once its KV is
computed, so two requests with the same new prefix that arrive together both miss there; here the second
hits), and the cache holds at most ``capacity_blocks`` blocks, evicting the least recently used.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

# vLLM's default block size (vllm@v0.32.0:vllm/config/cache.py), and the CPU build's when the command sets
# none (vllm@v0.32.0:vllm/platforms/cpu.py)
DEFAULT_BLOCK_SIZE = 16
CPU_BLOCK_SIZE = 128


class PrefixCache:
    def __init__(self, block_size: int, capacity_blocks: int) -> None:
        if block_size < 1 or capacity_blocks < 0:
            raise ValueError(
                f"block_size must be >= 1 and capacity >= 0, got {block_size}, {capacity_blocks}"
            )
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self.queries = 0
        self.hits = 0

    def _hashes(self, ids: Sequence[int], limit: int) -> list[bytes]:
        hashes: list[bytes] = []
        parent = b""
        bs = self.block_size
        for start in range(0, limit - limit % bs, bs):
            block = ",".join(map(str, ids[start : start + bs])).encode()
            parent = hashlib.blake2b(parent + block, digest_size=16).digest()
            hashes.append(parent)
        return hashes

    def admit(self, ids: Sequence[int]) -> int:
        """Count one request's prompt: returns its hit tokens, and caches its full blocks."""
        n = len(ids)
        self.queries += n
        hashes = self._hashes(ids, n)
        hit_blocks = 0
        for h in hashes[: max(0, n - 1) // self.block_size]:
            if h not in self._blocks:
                break
            hit_blocks += 1
        for h in hashes:
            self._blocks[h] = None
            self._blocks.move_to_end(h)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)
        hit = hit_blocks * self.block_size
        self.hits += hit
        return hit
