"""Every number the simulated vLLM prints is physical: over every version profile, every model of the
table and a few TP x PP layouts, the start-up logs and the /metrics exposition show no negative duration,
size or count, the weights per rank are the model's bytes over TP x PP, the KV cache fits in what the
weights leave, and the parts of a duration are not longer than the whole.

The checkers (`physical_checks.py`) are shown failing on injected bad values at the end of the file, so a
green run means the properties were checked, not that the checkers cannot fail.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from engine_testkit import TWO_RAY_NODES, run, serving, setup_for
from physical_checks import metrics_violations, startup_violations

from testbed.engine import startup_logs
from testbed.engine.app import EngineSetup
from testbed.engine.metrics import EngineMetrics
from testbed.engine.model_specs import MODELS
from testbed.engine.profiles import CHANGES, CURRENT_VERSION, LEGACY_VERSION, SCRIPT_ONLINE, Profile
from testbed.engine.startup_logs import LogEvent, StartupPlan, plan_startup

# Every distinct profile: features switch on at the versions in CHANGES, so one version below the first
# switch, every switch version, the legacy default and the current release cover them all.
VERSIONS = sorted(
    {(0, 5, 3), (0, 5, 4), LEGACY_VERSION, CURRENT_VERSION} | {ch.since for ch in CHANGES.values()}
)
LOG_FORMATS = ("auto", "legacy", "current")
# (name, tp, pp, extra flags). World > 8 spans two 8-GPU nodes over Ray, as the LWS deployment does.
RAY = ("--distributed-executor-backend", "ray", *TWO_RAY_NODES)
LAYOUTS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("tp1", 1, 1, ()),
    ("tp2", 2, 1, ()),
    ("tp8", 8, 1, ()),
    ("tp4-pp2", 4, 2, ()),
    ("tp8-pp2", 8, 2, RAY),
    ("tp16", 16, 1, RAY),
)


def _argv(
    model: str, version: tuple[int, int, int], log_format: str, tp: int, pp: int, extra: Sequence[str]
) -> list[str]:
    argv = [
        model,
        "--tensor-parallel-size",
        str(tp),
        "--pipeline-parallel-size",
        str(pp),
        "--profile",
        ".".join(map(str, version)),
        "--log-format",
        log_format,
        *extra,
    ]
    if tp * pp > 8:  # the multi-node helper of the image's era (a missing one is part of what is checked)
        argv += ["--launch-script", Profile.for_version(version).multi_node_script or SCRIPT_ONLINE]
    return argv


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "v" + ".".join(map(str, v)))
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_number_the_start_up_logs_print_is_physical(version: tuple[int, int, int], model: str) -> None:
    problems: list[str] = []
    checked = 0
    for (name, tp, pp, extra), log_format in itertools.product(LAYOUTS, LOG_FORMATS):
        setup = setup_for(*_argv(model, version, log_format, tp, pp, extra))
        plan = plan_startup(setup.startup)
        problems += [f"{name}/{log_format}: {p}" for p in startup_violations(setup, plan)]
        checked += 1
    assert checked == len(LAYOUTS) * len(LOG_FORMATS)
    assert not problems, "\n".join(problems[:20])


def test_the_layouts_reach_both_serving_and_the_memory_failure() -> None:
    """The sweep is worth its name only if it covers ready start-ups with all their lines, on one node and
    across two, and the out-of-memory exit (whose lines must be physical too)."""
    outcomes = set()
    for model, (name, tp, pp, extra) in itertools.product(sorted(MODELS), LAYOUTS):
        plan = plan_startup(setup_for(*_argv(model, CURRENT_VERSION, "auto", tp, pp, extra)).startup)
        outcomes.add((name, plan.failed, "CUDA out of memory" in (plan.failure or "")))
    assert ("tp1", False, False) in outcomes and ("tp8-pp2", False, False) in outcomes
    assert ("tp16", False, False) in outcomes and ("tp1", True, True) in outcomes


# --- /metrics ------------------------------------------------------------------------------------------


async def _traffic(argv: Sequence[str]) -> str:
    async with serving(*argv, "--time-scale", "0") as (client, _):
        for prompt, max_tokens in (("one two three", 12), ("a " * 300, 5), ("x", 1)):
            await client.post(
                "/v1/completions", json={"prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True}
            )
        return await (await client.get("/metrics")).text()


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "v" + ".".join(map(str, v)))
@pytest.mark.parametrize(
    ("model", "tp", "pp"), [("facebook/opt-125m", 1, 1), ("meta-llama/Llama-3.1-70B-Instruct", 4, 2)]
)
def test_every_number_the_metrics_expose_is_physical(
    version: tuple[int, int, int], model: str, tp: int, pp: int
) -> None:
    text = run(_traffic([model, "-tp", str(tp), "-pp", str(pp), "--profile", ".".join(map(str, version))]))
    assert "vllm:e2e_request_latency_seconds_count" in text
    assert not metrics_violations(text)


# --- the checkers fail on bad values --------------------------------------------------------------------


def _opt_setup() -> EngineSetup:
    return setup_for("facebook/opt-125m", "--profile", "current")


def test_the_start_up_checker_flags_a_negative_loading_time() -> None:
    """The bug the sweep was written for: `Loading weights took -2.07 seconds` (opt-125m, default flags)."""
    setup = _opt_setup()
    plan = plan_startup(setup.startup)
    assert not startup_violations(setup, plan)
    bad = LogEvent(
        at_s=plan.events[-1].at_s,
        pod=0,
        message="Loading weights took -2.07 seconds",
        level="INFO",
        source="default_loader.py:262",
    )
    broken = StartupPlan(events=(*plan.events, bad), ready_at_s=plan.ready_at_s)
    assert any("negative quantity" in p for p in startup_violations(setup, broken))


def test_the_start_up_checker_flags_an_injected_negative_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator made to print a negative duration (the graph capture) is caught by the sweep's checker."""
    monkeypatch.setattr(startup_logs.random.Random, "randint", lambda self, a, b: -a if a == 8 else a)
    setup = _opt_setup()
    problems = startup_violations(setup, plan_startup(setup.startup))
    assert any("Graph capturing finished in -8 secs" in p for p in problems), problems


def test_the_start_up_checker_flags_weights_that_do_not_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights per rank printed as if the model were not split over TP x PP."""
    setup = setup_for("meta-llama/Llama-3.1-70B-Instruct", "-tp", "4", "-pp", "2", "--profile", "current")
    real = Profile.weights_line
    monkeypatch.setattr(Profile, "weights_line", lambda self, gib, seconds: real(self, gib * 8, seconds))
    problems = startup_violations(setup, plan_startup(setup.startup))
    assert sum("weights per rank" in p for p in problems) == 8, problems


def test_the_start_up_checker_flags_a_part_longer_than_its_whole() -> None:
    setup = _opt_setup()
    plan = plan_startup(setup.startup)
    swapped = tuple(
        LogEvent(e.at_s, e.pod, "Loading weights took 9999.00 seconds", e.level, e.source, e.prefix)
        if "Loading weights took" in e.message
        else e
        for e in plan.events
    )
    problems = startup_violations(setup, StartupPlan(events=swapped, ready_at_s=plan.ready_at_s))
    assert any("longer than loading the model" in p for p in problems), problems


def test_the_metrics_checker_flags_injected_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    text = run(_traffic(["facebook/opt-125m", "--profile", "current"]))
    assert not metrics_violations(text)
    real = EngineMetrics.on_first_token
    monkeypatch.setattr(
        EngineMetrics, "on_first_token", lambda self, p, ttft, queue: real(self, p, ttft, queue - 5.0)
    )
    problems = metrics_violations(run(_traffic(["facebook/opt-125m", "--profile", "current"])))
    assert any("vllm:request_queue_time_seconds_sum" in p for p in problems), problems
    usage = text.replace(
        next(line for line in text.splitlines() if line.startswith("vllm:kv_cache_usage_perc{")),
        'vllm:kv_cache_usage_perc{model_name="facebook/opt-125m",engine="0"} 1.5',
    )
    assert any("outside 0..1" in p for p in metrics_violations(usage))
