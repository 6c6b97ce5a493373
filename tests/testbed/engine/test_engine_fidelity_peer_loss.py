"""The client's view of a group that lost a node (testbed/engine/fidelity_peer_loss.py): what it keeps, and
that each way a simulator could differ from real vLLM shows as a difference."""

from __future__ import annotations

from testbed.engine.fidelity_peer_loss import AfterLoss, Seen, client_view, view_differences

DEAD = '{"error": {"message": "EngineCore encountered an issue.", "type": "InternalServerError"}}'


def _dies(*, exit_code: int | None = 1) -> AfterLoss:
    """Fails requests with 500, /health 503, then exits and answers nothing."""
    return AfterLoss(
        (
            Seen("request", 0.0, 0.01, 500, "InternalServerError", DEAD),
            Seen("health", 0.0, 0.01, 503),
            Seen("request", 1.2, 0.01, None, "no connection"),
            Seen("health", 1.2, 0.01, None, "no connection"),
        ),
        exit_code,
        1.1 if exit_code is not None else None,
        2.0,
    )


def test_the_same_behaviour_at_other_times_and_latencies_is_no_difference() -> None:
    other = AfterLoss(
        (
            *tuple(Seen(s.what, s.at_s * 3, s.took_s * 10, s.status, s.detail, "") for s in _dies().seen),
            Seen("request", 9.0, 0.5, None, "no connection"),
        ),
        1,
        5.0,
        9.5,
    )
    assert view_differences(_dies(), other) == []


def test_the_view_names_what_a_client_would_act_on() -> None:
    assert client_view(_dies()) == {
        "requests served after the loss": "none",
        "first request after the loss": "500 InternalServerError",
        "HTTP errors to requests": "500 InternalServerError",
        "first /health after the loss": "503",
        "/health once a request failed": "never 200",
        "leader process": "exits 1",
    }


def test_a_simulator_that_keeps_serving_differs() -> None:
    serving = AfterLoss(
        (Seen("request", 0.0, 0.01, 200, "", "{}"), Seen("health", 0.0, 0.01, 200)), None, None, 420.0
    )
    got = view_differences(_dies(), serving)
    assert "requests served after the loss: real vLLM 'none', simulator '1 of 1'" in got
    assert "first /health after the loss: real vLLM '503', simulator '200'" in got
    assert "leader process: real vLLM 'exits 1', simulator 'still running after 420 s'" in got


def test_a_hang_where_real_vllm_answers_500_differs() -> None:
    hangs = AfterLoss(
        (Seen("request", 0.0, 30.0, None, "none within 30 s"), *_dies().seen[1:]), 1, 31.0, 33.0
    )
    got = view_differences(_dies(), hangs)
    assert got[0] == (
        "first request after the loss: real vLLM '500 InternalServerError', simulator 'no answer (none within 30 s)'"
    )


def test_another_exit_code_or_error_type_differs() -> None:
    assert view_differences(_dies(), _dies(exit_code=0)) == [
        "leader process: real vLLM 'exits 1', simulator 'exits 0'"
    ]
    other_type = AfterLoss(
        (Seen("request", 0.0, 0.01, 500, "EngineDeadError"), *_dies().seen[1:]), 1, 1.0, 2.0
    )
    assert any(d.startswith("first request after the loss:") for d in view_differences(_dies(), other_type))


def test_a_simulator_whose_health_recovers_or_that_fails_much_later_differs() -> None:
    seen = list(_dies().seen)
    seen.append(Seen("health", 1.5, 0.01, 200))
    assert view_differences(_dies(), AfterLoss(tuple(seen), 1, 1.1, 2.0)) == [
        "/health once a request failed: real vLLM 'never 200', simulator '200 again'"
    ]
    late = AfterLoss(
        tuple(Seen(s.what, s.at_s + 60, s.took_s, s.status, s.detail) for s in _dies().seen), 1, 61, 62
    )
    assert view_differences(_dies(), late) == [
        "first failed request at: real vLLM +0 s, simulator +60 s after the loss"
    ]
    assert view_differences(_dies(), late, tolerance_s=100) == []
