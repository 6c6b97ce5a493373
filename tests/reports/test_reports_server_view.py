"""The reports show the server's view beside the client's, and what cannot be, loudly."""

from __future__ import annotations

from conftest import synthetic_result
from reports.html import render_html
from reports.markdown import render_markdown
from reports.schema import Result, ServerLatency, ServerPercentile, ServerView
from reports.text import num


def with_view(result: Result, view: ServerView) -> Result:
    levels = [
        lv.model_copy(update={"metrics": lv.metrics.model_copy(update={"server_view": view})})
        for lv in result.results[:1]
    ]
    return result.model_copy(update={"results": levels})


def view(client_p50: float, problems: list[str]) -> ServerView:
    p50 = ServerPercentile(lower_ms=5.0, upper_ms=10.0, estimate_ms=7.5, client_ms=client_p50)
    return ServerView(
        ttft_ms=ServerLatency(metric="vllm:time_to_first_token_seconds", count=40, p50=p50),
        requests_finished=39,
        generation_tokens=5000,
        prompt_tokens=None,
        network_ms=0.4,
        problems=problems,
    )


def test_markdown_puts_the_servers_bucket_beside_the_clients_percentile() -> None:
    result = with_view(synthetic_result(1), view(8.2, []))
    text = render_markdown([result], ["run"])
    assert "Client beside server (vLLM /metrics)" in text
    row = next(line for line in text.splitlines() if line.startswith("| c=1 ") and "| TTFT " in line)
    client = num(result.results[0].metrics.ttft_ms.p50)
    assert f" {client} |" in row and "(5.00, 10.0]" in row and "7.50" in row and "agrees" in row
    counts = next(line for line in text.splitlines() if line.startswith("| c=1 ") and " / 39 " in line)
    assert "/ 5000" in counts and "/ \u2014" in counts  # the prompt tokens the server did not export


def test_an_impossible_ttft_and_a_count_disagreement_are_shown_with_their_reason() -> None:
    problems = [
        "TTFT p50: client 2.00 ms is below the server's lower bound 5 ms (cannot be)",
        "server counted 39 finished requests (vllm:request_success_total), client saw 40 complete",
    ]
    result = with_view(synthetic_result(1), view(2.0, problems))
    text = render_markdown([result], ["run"])
    assert "IMPOSSIBLE" in text and "DISAGREE" in text
    assert all(p in text for p in problems)
    html = render_html([result], ["run"])
    assert "IMPOSSIBLE" in html and "Client beside server" in html


def test_no_server_view_no_table() -> None:
    assert "Client beside server" not in render_markdown([synthetic_result(1)], ["run"])


def test_a_level_run_with_repeats_shows_each_repeats_server_view() -> None:
    """A fold of repeats has no server view of its own; each repeat was reconciled, so each gets its row."""
    level = synthetic_result(1).results[0]
    repeats = [
        level.metrics.model_copy(update={"server_view": view(8.2, [])}),
        level.metrics.model_copy(
            update={"server_view": view(2.0, ["TTFT p50: client below the lower bound"])}
        ),
    ]
    folded = level.model_copy(update={"repeats": repeats})  # the fold's own metrics carry no server view
    result = synthetic_result(1).model_copy(update={"results": [folded]})
    text = render_markdown([result], ["run"])
    rows = [line for line in text.splitlines() if line.startswith("| c=1 (repeat ") and "| TTFT " in line]
    assert len(rows) == 2, text
    assert "agrees" in rows[0] and "IMPOSSIBLE" in rows[1]
