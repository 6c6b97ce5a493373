"""What the reference server does: its options, and the faults a request (or every request) can ask for."""

from __future__ import annotations

from dataclasses import dataclass

FAULTS = (
    "500", "429", "503", "close", "reset", "malformed", "truncated", "no_done", "no_usage", "error_event", "hang",
    "big",
)  # fmt: skip
ERROR_STATUS_FAULTS = ("500", "429", "503")  # answered with this status and a vLLM-shaped JSON error body
FAULT_PREFIX = "@fault="


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    tokens_per_chunk: int = 1
    default_max_tokens: int = 16
    model: str = "reference-model"
    fault: str | None = None  # applied to every request
    record_truth: bool = False
    announce: bool = False  # print "arrived <request id>" on stdout for each request
    barrier: int = 0  # hold every stream's first token until this many streams are open at once

    @property
    def capacity_mode(self) -> bool:
        """No pacing: a stream is written in one piece."""
        return self.ttft_ms == 0 and self.itl_ms == 0


def request_fault(config: ServerConfig, last_message: str) -> str | None:
    """The fault for one request: ``@fault=NAME`` at the start of its prompt (or last chat message), else ``--fault``."""
    if last_message.startswith(FAULT_PREFIX):
        return last_message.split()[0][len(FAULT_PREFIX) :]
    return config.fault
