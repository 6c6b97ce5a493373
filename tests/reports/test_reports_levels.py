"""Load levels read as a person would name them, and only truly equal levels are matched."""

from __future__ import annotations

from reports.levels import level_key, level_label, level_labels, offered_load
from reports.schema import LoadSpec


def test_labels_name_the_load_as_asked() -> None:
    assert level_label(LoadSpec(concurrency=64)) == "c=64"
    assert level_label(LoadSpec(request_rate=2.5)) == "2.5 req/s"
    assert level_label(LoadSpec(request_rate=10, concurrency=64)) == "10 req/s c<=64"
    assert level_label(LoadSpec(request_rate=5, request_rate_end=20)) == "5-20 req/s"
    assert level_label(LoadSpec()) == "unbounded"


def test_labels_grow_only_where_they_would_collide() -> None:
    loads = [
        LoadSpec(concurrency=8, api="chat", input_len=1024, output_len=128),
        LoadSpec(concurrency=8, api="completions", input_len=1024, output_len=128),
        LoadSpec(concurrency=16),
    ]
    assert level_labels(loads) == [
        "c=8 chat random 1024/128 tok",
        "c=8 completions random 1024/128 tok",
        "c=16 completions random",
    ]
    assert level_labels([LoadSpec(concurrency=8), LoadSpec(concurrency=16)]) == ["c=8", "c=16"]


def test_repeats_match_whatever_their_seed_but_a_ramp_is_another_level() -> None:
    assert level_key(LoadSpec(concurrency=8, seed=1, num_requests=100)) == level_key(
        LoadSpec(concurrency=8, seed=2, num_requests=400)
    )
    assert level_key(LoadSpec(request_rate=5)) != level_key(LoadSpec(request_rate=5, request_rate_end=20))


def test_levels_are_plotted_along_the_load_every_level_names() -> None:
    assert offered_load([LoadSpec(concurrency=1), LoadSpec(concurrency=8)]) == ("concurrency", [1.0, 8.0])
    assert offered_load([LoadSpec(request_rate=1, concurrency=8)]) == ("request rate (req/s)", [1.0])
    assert offered_load([LoadSpec(concurrency=1), LoadSpec(request_rate=2)]) is None
