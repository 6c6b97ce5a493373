"""A level's split over LWS groups: the client's count per leader from the balancer's header, the server's from
each leader's own counter, and the GPUs the per-GPU figures divide by."""

from __future__ import annotations

from load.balancer_api import Upstream
from load.group_split import LeaderScrapes, combine, group_loads
from load.records import RequestRecord
from load.server_metrics import Snapshot
from reports.group_load import fold_groups, level_gpus, loaded_gpus
from reports.schema import GroupLoad, LevelMetrics, LevelResult, LoadSpec, RunMetadata

UP = [Upstream("vllm-0", "http://127.0.0.1:1", "0", 16), Upstream("vllm-1", "http://127.0.0.1:2", "1", 16)]


def _record(i: int, pod: str | None, ok: bool = True) -> RequestRecord:
    record = RequestRecord(index=i, scheduled=0.0, sent=0.0, finished=1.0, endpoint=pod)
    if not ok:
        record.error = "http_500"
    return record


def _snap(success: float) -> Snapshot:
    return Snapshot({"vllm:request_success_total": success}, {"vllm:request_success_total": "counter"})


def test_each_group_counts_what_its_leader_served_on_both_sides() -> None:
    records = [_record(i, "vllm-1") for i in range(5)] + [_record(9, "vllm-1", ok=False)]
    before = LeaderScrapes({"vllm-0": _snap(3), "vllm-1": _snap(10)})
    after = LeaderScrapes({"vllm-0": _snap(3), "vllm-1": _snap(15)})
    groups = group_loads(records, UP, before, after)
    assert groups == [
        GroupLoad(group="0", pod="vllm-0", client_requests=0, server_requests=0, gpus=16),
        GroupLoad(group="1", pod="vllm-1", client_requests=5, server_requests=5, gpus=16),
    ]
    assert loaded_gpus(groups) == 16  # one group served: per GPU over its 16 GPUs, not 32


def test_without_the_header_the_client_count_is_unknown_and_the_server_decides() -> None:
    records = [_record(i, None) for i in range(4)]
    groups = group_loads(
        records,
        UP,
        LeaderScrapes({"vllm-0": _snap(0), "vllm-1": _snap(0)}),
        LeaderScrapes({"vllm-0": _snap(4), "vllm-1": _snap(0)}),
    )
    assert [(g.client_requests, g.server_requests) for g in groups] == [(None, 4), (None, 0)]
    assert loaded_gpus(groups) == 16


def test_a_leader_unreadable_after_the_level_has_an_unknown_server_count() -> None:
    groups = group_loads(
        [_record(0, "vllm-0")],
        UP,
        LeaderScrapes({"vllm-0": _snap(1), "vllm-1": _snap(1)}),
        LeaderScrapes({"vllm-0": _snap(2), "vllm-1": None}),
    )
    assert [g.server_requests for g in groups] == [1, None]
    assert LeaderScrapes({"vllm-0": _snap(1), "vllm-1": None}).combined() is None


def test_a_pod_named_by_a_response_but_not_listed_is_still_counted() -> None:
    groups = group_loads([_record(0, "vllm-7")], UP[:1], None, None)
    assert [(g.pod, g.group, g.client_requests, g.gpus) for g in groups] == [
        ("vllm-0", "0", 0, 16),
        ("vllm-7", None, 1, None),
    ]
    assert loaded_gpus(groups) is None  # a loaded group of unknown GPUs: unknown, not a guess


def test_leaders_combine_as_one_server() -> None:
    a = Snapshot(
        {"vllm:request_success_total": 2, "vllm:kv_cache_usage_perc": 0.5, "vllm:num_requests_running": 3},
        {
            "vllm:request_success_total": "counter",
            "vllm:kv_cache_usage_perc": "gauge",
            "vllm:num_requests_running": "gauge",
        },
        {"vllm:e2e_request_latency_seconds": {1.0: 2.0}},
        (1.0, 2.0),
    )
    b = Snapshot(
        {"vllm:request_success_total": 5, "vllm:kv_cache_usage_perc": 0.25, "vllm:num_requests_running": 1},
        dict(a.kinds),
        {"vllm:e2e_request_latency_seconds": {1.0: 1.0}},
        (2.0, 5.0),
    )
    both = combine([a, b])
    assert both.values == {
        "vllm:request_success_total": 7,
        "vllm:kv_cache_usage_perc": 0.5,
        "vllm:num_requests_running": 4,
    }
    assert both.buckets == {"vllm:e2e_request_latency_seconds": {1.0: 3.0}}
    assert both.request_spans == (3.0, 7.0)


def _level(groups: list[GroupLoad] | None, gpus_loaded: int | None) -> LevelResult:
    raw = LevelMetrics.model_validate(
        {
            "ttft_ms": {},
            "tpot_ms": {},
            "itl_ms": {},
            "e2el_ms": {},
            "requests": {"sent": 1, "completed": 1, "failed": 0},
            "throughput": {},
            "groups": [g.model_dump() for g in groups] if groups is not None else None,
            "gpus_loaded": gpus_loaded,
        }
    )
    return LevelResult(load=LoadSpec(num_requests=1), metrics=raw)


def test_per_gpu_divides_by_the_loaded_groups_and_old_files_by_every_gpu() -> None:
    run = RunMetadata(gpus=32)
    assert level_gpus(run, _level([GroupLoad(pod="vllm-0", client_requests=1, gpus=16)], 16)) == 16
    assert level_gpus(run, _level(None, None)) == 32


def test_repeats_add_up_per_group() -> None:
    one = [GroupLoad(group="0", pod="vllm-0", client_requests=3, server_requests=3, gpus=16)]
    two = [
        GroupLoad(group="0", pod="vllm-0", client_requests=2, server_requests=None, gpus=16),
        GroupLoad(group="1", pod="vllm-1", client_requests=1, server_requests=1, gpus=16),
    ]
    folded = fold_groups([one, two])
    assert folded == [
        GroupLoad(group="0", pod="vllm-0", client_requests=5, server_requests=None, gpus=16),
        GroupLoad(group="1", pod="vllm-1", client_requests=1, server_requests=1, gpus=16),
    ]
    assert fold_groups([None, None]) is None
