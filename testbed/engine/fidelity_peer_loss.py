"""What a client sees of a serving group that lost a node, reduced to what can be compared between real vLLM
and the simulator (tests/testbed/engine/test_fidelity_peer_loss.py).

After the loss the same client asks, in rounds, for a completion and for `/health`, each with a bounded
timeout, and watches whether and how the leader process exits. Each answer is recorded (`Seen`) with its time
since the loss; the view (`client_view`) keeps what a client or a probe would act on: whether any request was
still served, the first request's answer, the answers in the order they changed (status and error type, or no
answer: no connection, or none within the timeout), the same for `/health`, and the leader's exit. Latencies
and bodies are kept for the record, not compared: they differ between any two machines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seen:
    """One answer after the loss. `status` None: no HTTP answer; `detail` then says why ("no connection", or
    "none within N s"); for an HTTP error it is the error's `type`."""

    what: str  # "request" or "health"
    at_s: float  # when it was sent, seconds since the loss
    took_s: float
    status: int | None
    detail: str = ""
    body: str = ""  # the first few hundred characters, for the record

    def kind(self) -> str:
        if self.status is None:
            return f"no answer ({self.detail})"
        if self.status == 200 or not self.detail:
            return str(self.status)
        return f"{self.status} {self.detail}"


@dataclass(frozen=True)
class AfterLoss:
    seen: tuple[Seen, ...]
    exit_code: int | None  # None: still running when the watch ended
    exit_s: float | None  # seconds since the loss
    watched_s: float

    def of(self, what: str) -> list[Seen]:
        return [s for s in self.seen if s.what == what]


def _in_order(kinds: list[str]) -> str:
    """The kinds in the order they changed: 500 x3, then no connection x2 -> '500 -> no answer (...)'."""
    changes = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    return " -> ".join(changes) if changes else "(none asked)"


def first_error_s(after: AfterLoss) -> float | None:
    """When the first HTTP error answer to a request arrived (the engine gave up on it), seconds since the loss."""
    errors = [s.at_s + s.took_s for s in after.of("request") if s.status is not None and s.status >= 500]
    return min(errors) if errors else None


def client_view(after: AfterLoss) -> dict[str, str]:
    """What a client or a probe would act on. The order of every answer is in `timeline`, not compared: a
    request sent just as the engine dies or the server stops may land either side of it."""
    requests, health = after.of("request"), after.of("health")
    served = sum(1 for s in requests if s.status == 200)
    errors = sorted({s.kind() for s in requests if s.status is not None and s.status >= 400})
    failed_at = first_error_s(after)
    health_after = [s for s in health if failed_at is not None and s.at_s >= failed_at]
    return {
        "requests served after the loss": f"{served} of {len(requests)}" if served else "none",
        "first request after the loss": requests[0].kind() if requests else "(none asked)",
        "HTTP errors to requests": ", ".join(errors) or "none",
        "first /health after the loss": health[0].kind() if health else "(none asked)",
        "/health once a request failed": (
            "(no request failed)"
            if failed_at is None
            else "200 again"
            if any(s.status == 200 for s in health_after)
            else "never 200"
        ),
        "leader process": (
            f"still running after {after.watched_s:.0f} s"
            if after.exit_code is None
            else f"exits {after.exit_code}"
        ),
    }


def view_differences(real: AfterLoss, sim: AfterLoss, *, tolerance_s: float = 10.0) -> list[str]:
    """One line per point of the client's view where the simulator differs from real vLLM; and when both
    fail requests, whether they start failing them at about the same time (within `tolerance_s`)."""
    r, s = client_view(real), client_view(sim)
    out = [f"{key}: real vLLM {r[key]!r}, simulator {s[key]!r}" for key in r if r[key] != s[key]]
    real_at, sim_at = first_error_s(real), first_error_s(sim)
    if real_at is not None and sim_at is not None and abs(real_at - sim_at) > tolerance_s:
        out.append(
            f"first failed request at: real vLLM +{real_at:.0f} s, simulator +{sim_at:.0f} s after the loss"
        )
    return out


def timeline(after: AfterLoss) -> list[str]:
    """The record, one line per answer, and the answers in the order they changed, for the test's output."""
    lines = [
        f"  +{s.at_s:6.1f} s {s.what:7s} {s.kind():40s} in {s.took_s:5.1f} s  {s.body[:160]!r}"
        for s in after.seen
    ]
    ended = (
        f"  +{after.exit_s:6.1f} s leader exited {after.exit_code}"
        if after.exit_s is not None
        else f"  leader still running after {after.watched_s:.0f} s"
    )
    return [
        *lines,
        ended,
        f"  requests in order: {_in_order([s.kind() for s in after.of('request')])}",
        f"  /health in order: {_in_order([s.kind() for s in after.of('health')])}",
    ]
