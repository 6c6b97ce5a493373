"""Workloads: seeded prompts of the asked length, ShareGPT files, shared prefixes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from load.config import ConfigError, RandomWorkload, SharedPrefixWorkload, ShareGptWorkload
from load.workload import WORDS, WorkloadError, build_requests


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_random_prompts_have_input_len_words_and_ask_output_len_tokens() -> None:
    specs = build_requests(RandomWorkload(input_len=37, output_len=9), 20, rng())
    assert len(specs) == 20
    assert all(len(s.prompt.split()) == 37 and s.output_len == 9 and s.input_len == 37 for s in specs)
    assert len({s.prompt for s in specs}) == 20
    assert set(" ".join(s.prompt for s in specs).split()) <= set(WORDS)


def test_the_same_seed_builds_the_same_prompts() -> None:
    w = RandomWorkload(input_len=10, output_len=4)
    assert build_requests(w, 5, rng(7)) == build_requests(w, 5, rng(7))
    assert build_requests(w, 5, rng(7)) != build_requests(w, 5, rng(8))


def test_the_word_list_has_no_duplicates() -> None:
    assert len(set(WORDS)) == len(WORDS)


def test_shared_prefix_prompts_share_one_of_n_prefixes_evenly() -> None:
    w = SharedPrefixWorkload(input_len=40, output_len=5, prefix_len=30, num_prefixes=4)
    specs = build_requests(w, 100, rng())
    prefixes = [" ".join(s.prompt.split()[:30]) for s in specs]
    assert sorted(prefixes.count(p) for p in set(prefixes)) == [25, 25, 25, 25]
    assert all(len(s.prompt.split()) == 40 for s in specs)


def test_shared_prefix_rejects_a_prefix_as_long_as_the_prompt() -> None:
    with pytest.raises(ConfigError, match="prefix_len"):
        SharedPrefixWorkload(input_len=10, output_len=5, prefix_len=10)


def write_sharegpt(path: Path, conversations: list[tuple[str, str]]) -> Path:
    path.write_text(
        json.dumps(
            [
                {"id": str(i), "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
                for i, (q, a) in enumerate(conversations)
            ]
        )
    )
    return path


def test_sharegpt_takes_the_first_turn_and_estimates_output_from_the_reply(tmp_path: Path) -> None:
    path = write_sharegpt(
        tmp_path / "sg.json", [("What is the capital of France?", "Paris is. " * 10), ("hi", "hey")]
    )
    specs = build_requests(ShareGptWorkload(path=path), 3, rng())
    assert {s.prompt for s in specs} == {"What is the capital of France?"}  # "hi" is filtered as too short
    assert specs[0].output_len == 25  # 100 characters at 4 per token
    fixed = build_requests(ShareGptWorkload(path=path, output_len=7), 2, rng())
    assert all(s.output_len == 7 for s in fixed)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "not a JSON file"),
        ('{"a": 1}', "expected a JSON list"),
        ("[]", "no conversation with two turns"),
        (
            '[{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}]',
            "no conversation fits",
        ),
    ],
)
def test_a_bad_sharegpt_file_is_a_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "sg.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(WorkloadError, match=message):
        build_requests(ShareGptWorkload(path=path), 1, rng())
