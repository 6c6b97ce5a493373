"""The shape comparison (testbed/engine/fidelity.py) flags what a client or scraper would notice, and only that."""

from __future__ import annotations

import json
import re

from testbed.engine.fidelity import (
    Allowed,
    Response,
    json_differences,
    line_shape_differences,
    line_shapes,
    metrics_differences,
    parse_sse,
    response_differences,
    split_allowed,
    sse_differences,
)

REAL = {
    "id": "cmpl-8c90374ac718a56d",
    "object": "text_completion",
    "created": 1796290198,
    "choices": [{"index": 0, "text": "ss", "finish_reason": "length", "token_ids": None}],
    "usage": {"prompt_tokens": 4, "completion_tokens": 5},
}


def _sim(**changes: object) -> dict[str, object]:
    body = json.loads(json.dumps(REAL))
    body.update(changes)
    return body


def test_values_that_legitimately_differ_are_not_differences() -> None:
    sim = _sim(id="cmpl-0123456789abcdef0123", created=1, usage={"prompt_tokens": 9, "completion_tokens": 1})
    sim["choices"][0]["text"] = "other words"  # type: ignore[index]
    assert json_differences(REAL, sim) == []


def test_a_missing_field_is_flagged() -> None:
    sim = _sim()
    del sim["choices"][0]["token_ids"]  # type: ignore[attr-defined]
    assert json_differences(REAL, sim) == ["$.choices[0].token_ids: missing in the simulator"]


def test_an_extra_field_is_flagged() -> None:
    assert json_differences(REAL, _sim(system_fingerprint="x")) == [
        "$.system_fingerprint: extra in the simulator (real vLLM has no such field)"
    ]


def test_types_names_and_id_prefixes_are_compared() -> None:
    sim = _sim(id="chatcmpl-1", object="chat.completion", created=1.5, choices=[])
    assert json_differences(REAL, sim) == [
        "$.id: prefix 'cmpl-' in real vLLM, 'chatcmpl-' in the simulator",
        "$.object: 'text_completion' in real vLLM, 'chat.completion' in the simulator",
        "$.created: integer in real vLLM, float in the simulator",
        "$.choices: 1 items in real vLLM, 0 in the simulator",
    ]


def test_a_wrong_status_and_error_fields_are_flagged() -> None:
    real = Response(400, "application/json", b'{"error":{"message":"a","type":"BadRequestError","param":"max_tokens","code":400}}')  # fmt: skip
    sim = Response(422, "application/json; charset=utf-8", b'{"error":{"message":"b","type":"Bad Request","param":null,"code":422}}')  # fmt: skip
    assert response_differences(real, sim, "bad max_tokens") == [
        "bad max_tokens: status 400 in real vLLM, 422 in the simulator",
        "bad max_tokens: content type 'application/json' in real vLLM, 'application/json; charset=utf-8' in "
        "the simulator",
        "bad max_tokens.error.type: 'BadRequestError' in real vLLM, 'Bad Request' in the simulator",
        "bad max_tokens.error.param: string in real vLLM, null in the simulator",
        "bad max_tokens.error.code: 400 in real vLLM, 422 in the simulator",
    ]


STREAM = (
    b'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"a","finish_reason":null}]}\n\n'
    b'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"b","finish_reason":"length"}]}\n\n'
    b"data: [DONE]\n\n"
)


def test_a_well_framed_stream_has_no_problems_and_compares_equal_to_itself() -> None:
    parsed = parse_sse(STREAM)
    assert parsed.problems == () and parsed.frames[-1] == "[DONE]" and len(parsed.frames) == 3
    assert sse_differences(STREAM, STREAM.replace(b'"a"', b'"zz"')) == []


def test_wrong_framing_is_flagged() -> None:
    no_space = STREAM.replace(b"data: {", b"data:{", 1)
    assert sse_differences(STREAM, no_space) == [
        "stream: framing: frame 0 starts with 'data:' (expected 'data: ') in the simulator",
        "stream[0]: object in real vLLM, string in the simulator",
    ]
    crlf = STREAM.replace(b"\n\n", b"\r\n\r\n")
    assert sse_differences(STREAM, crlf) == [
        "stream: framing: frames use CR or CRLF line ends (expected LF only) in the simulator"
    ]
    no_done = STREAM.replace(b"data: [DONE]\n\n", b"")
    assert sse_differences(STREAM, no_done) == [
        "stream: framing: the last frame is not `data: [DONE]` in the simulator",
        "stream: more frames in real vLLM (3) than in the simulator (2)",
        "stream[2]: string in real vLLM, object in the simulator",
    ]
    glued = STREAM.replace(b"}\n\ndata", b"}\ndata", 1)
    assert "stream: framing: frame 0 has 2 lines (expected one `data: ` line) in the simulator" in (
        sse_differences(STREAM, glued)
    )


def test_a_stream_with_fewer_token_frames_is_compared_frame_by_frame_from_its_end() -> None:
    first, last, done = STREAM.split(b"\n\n")[:3]
    longer = b"\n\n".join([first, first, last, done]) + b"\n\n"
    assert sse_differences(STREAM, longer) == [
        "stream: fewer frames in real vLLM (3) than in the simulator (4)"
    ]
    no_reason = longer.replace(b',"finish_reason":"length"', b"")
    assert sse_differences(STREAM, no_reason) == [
        "stream: fewer frames in real vLLM (3) than in the simulator (4)",
        "stream[1].choices[0].finish_reason: missing in the simulator",
    ]


def test_a_stream_answer_is_compared_as_sse() -> None:
    sse = "text/event-stream; charset=utf-8"
    extra = STREAM.replace(b'"finish_reason":"length"}', b'"finish_reason":"length","stop_reason":null}')
    assert response_differences(Response(200, sse, STREAM), Response(200, sse, extra), "s") == [
        "s[1].choices[0].stop_reason: extra in the simulator (real vLLM has no such field)"
    ]


METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 0.0
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny"} 3.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} 1.0
# HELP vllm:request_success_created Count of successfully processed requests.
# TYPE vllm:request_success_created gauge
vllm:request_success_created{engine="0",finished_reason="stop",model_name="tiny"} 1.7e9
vllm:request_success_created{engine="0",finished_reason="length",model_name="tiny"} 1.7e9
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="tiny"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 4.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="tiny"} 4.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="tiny"} 2.5
"""


def test_identical_metrics_with_other_values_compare_equal() -> None:
    assert metrics_differences(METRICS, METRICS.replace("3.0", "7.0").replace("2.5", "9.25")) == []


def test_a_missing_metric_family_is_flagged() -> None:
    sim = METRICS.split("# HELP vllm:e2e_request_latency_seconds ")[0]
    assert metrics_differences(METRICS, sim) == [
        "/metrics: family vllm:e2e_request_latency_seconds (histogram) missing in the simulator"
    ]


def test_a_wrong_type_is_flagged() -> None:
    sim = METRICS.replace(
        "# TYPE vllm:num_requests_running gauge", "# TYPE vllm:num_requests_running counter"
    )
    assert metrics_differences(METRICS, sim) == [
        "/metrics: vllm:num_requests_running: TYPE gauge in real vLLM, counter in the simulator"
    ]


def test_suffixes_label_names_and_enumerated_label_values_are_compared() -> None:
    sim = "\n".join(line for line in METRICS.splitlines() if "_created" not in line) + "\n"
    sim = sim.replace('finished_reason="length"', 'finished_reason="abort"').replace(',le="0.3"', ',le="0.5"')
    sim = sim.replace('vllm:num_requests_running{engine="0",', "vllm:num_requests_running{")
    assert metrics_differences(METRICS, sim) == [
        "/metrics: family vllm:request_success_created (gauge) missing in the simulator",
        "/metrics: vllm:e2e_request_latency_seconds: le values [0.3,+Inf] in real vLLM, [0.5,+Inf] in the simulator",
        "/metrics: vllm:num_requests_running: label names {engine,model_name} in real vLLM, {model_name} in the "
        "simulator",
        "/metrics: vllm:request_success_total: finished_reason values [length,stop] in real vLLM, [abort,stop] in "
        "the simulator",
    ]


def test_log_lines_are_compared_by_wording_with_digits_folded() -> None:
    patterns = {
        "weights": re.compile(r"Model loading took \S+ GiB"),
        "start": re.compile(r"Starting vLLM \w+"),
    }
    real = line_shapes(
        ["x Model loading took 1.5 GiB memory", "Starting vLLM server on http://a:1"], patterns
    )
    sim = line_shapes(
        ["y Model loading took 22.25 GiB", "Starting vLLM API server 0 on http://a:1"], patterns
    )
    assert real["weights"] == sim["weights"] == {"Model loading took N GiB"}
    assert line_shape_differences(real, sim) == [
        "log: start: 'Starting vLLM server' in real vLLM, not in the simulator",
        "log: start: 'Starting vLLM API' in the simulator, not in real vLLM",
    ]


def test_the_allowlist_accepts_only_what_it_names() -> None:
    entry = Allowed(r"^n=2: ", "one choice per request")
    left, used = split_allowed(["n=2: status 200 in real vLLM, 400 in the simulator", "other: x"], [entry])
    assert left == ["other: x"] and used == {entry: ["n=2: status 200 in real vLLM, 400 in the simulator"]}
