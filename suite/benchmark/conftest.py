"""The benchmark's deployments: each topology of --topologies deployed in turn, in its own namespace, reached
through its Service; or the server at --endpoint. Only one topology is deployed at a time (the cluster's GPUs
usually fit one), so run the benchmark without pytest-xdist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fixtures import deploy, lifecycle, namespace, run_metadata, served_by, variants
from fixtures.deployment_plugin import SETTINGS
from fixtures.kube import ClusterUnreachable
from fixtures.plan import make_plan
from fixtures.run_state import RunState
from fixtures.service_target import open_service_target
from fixtures.settings import Settings, UsageError
from plumbing.port_forward import PortForwardError

# On the testbed, the simulated GPUs run 5x faster than modelled: slow enough that the simulator's own
# overhead stays small next to the modelled step times, fast enough for a sweep of three topologies in minutes.
BENCH_TIME_SCALE = 0.2


def pytest_configure(config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS, None)
    if settings is not None and settings.lws_upgrade_from is not None:
        raise pytest.exit.Exception(
            f"usage error: --lws-upgrade-from {settings.lws_upgrade_from} upgrades the testbed's LWS in place for "
            "the LWS-UPGRADE conformance profile (nox -s conformance); the benchmark upgrades nothing: drop it, "
            "or give --lws-version to benchmark on one release",
            returncode=2,
        )


def topologies(settings: Settings) -> tuple[str, ...]:
    if settings.endpoint is not None:
        return ("endpoint",)
    if settings.lws is not None:
        return (settings.lws,)
    if settings.manifest is not None:
        return (settings.manifest.stem,)
    return settings.topologies or (settings.topology,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "topology" in metafunc.fixturenames:
        metafunc.parametrize(
            "topology", topologies(metafunc.config.stash[SETTINGS]), indirect=True, scope="session"
        )


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass(frozen=True)
class BenchTarget:
    url: str
    model: str
    metadata: dict[str, Any]
    # the loopback balancer in front of the Service's endpoints (fixtures/service_target.py); None: --endpoint
    balancer: str | None = None


@pytest.fixture(scope="session")
def bench_target(
    request: pytest.FixtureRequest, topology: str, settings: Settings, run_state: RunState, progress: Any
) -> Iterator[BenchTarget]:
    """The server to load: this topology deployed and ready, reached through its Service (torn down after)."""
    if settings.in_place:
        yield from _in_place_target(request, settings, progress)
        return
    try:
        plan = make_plan(
            settings
            if settings.manifest or settings.endpoint
            else settings.model_copy(update={"topology": topology})
        )
    except UsageError as exc:
        pytest.exit(f"usage error: {exc}", returncode=2)
    model = plan.info.model or ""
    if settings.endpoint is not None:
        answer = served_by.ask_server(settings.endpoint)  # the simulator says so; anything else is "external"
        engine = served_by.engine_served(answer, None, served_by.EXTERNAL) or served_by.EXTERNAL
        yield BenchTarget(
            settings.endpoint,
            model,
            {
                "endpoint": settings.endpoint,
                "vllm_version": answer.version if answer else None,
                "model": model,
                "engine": engine,
                "engine_per_server": answer.engine if answer else None,
            },
        )
        return
    kube = request.getfixturevalue("kube")
    name = f"{namespace.generated_name(run_state.run_id, 'lws-bench')}-{topology}"[:63]
    scale = settings.sim_time_scale if settings.sim_time_scale is not None else BENCH_TIME_SCALE
    testbed = request.getfixturevalue("testbed") if settings.embedded else None
    variants.make_room(testbed, variants.nodes_needed(plan), progress)  # e.g. tp8-pp2-r2: 4 nodes
    try:
        deployed = lifecycle.deploy_plan(
            kube,
            plan,
            settings,
            run_state,
            request.getfixturevalue("cluster_target"),
            name,
            progress,
            sim_time_scale=scale,
        )
        forward = open_service_target(kube, deployed, settings, progress)
    except ClusterUnreachable as exc:
        pytest.exit(f"cluster prerequisite missing: {exc}", returncode=3)
    except (deploy.DeployError, PortForwardError) as exc:
        pytest.fail(str(exc))
    try:  # the namespace is deleted even when asking what served it fails
        meta = {  # what served it: the server (GET /version) and the testbed asked, fixtures/served_by.py
            **lifecycle.metadata(
                kube,
                deployed,
                settings,
                scale,
                engine=_testbed_engine(settings),
                server_url=forward.balancer.url,
            ),
            "endpoint": forward.endpoint_label,
        }
        yield BenchTarget(forward.url, model, meta, forward.balancer.url)
    finally:
        forward.stop()
        if not settings.keep:
            progress(f"deleting namespace {name}")
            lifecycle.delete_namespace(kube, name, True, settings, progress)


def _in_place_target(
    request: pytest.FixtureRequest, settings: Settings, progress: Any
) -> Iterator[BenchTarget]:
    """--lws: the LeaderWorkerSet already there, reached through its Service; metadata from the live objects.
    Nothing deployed or deleted."""
    kube = request.getfixturevalue("kube")
    deployed = request.getfixturevalue("deployed")  # read from the live objects (the `plan` fixture), ready
    try:
        forward = open_service_target(kube, deployed, settings, progress)
    except (deploy.DeployError, PortForwardError) as exc:
        pytest.fail(str(exc))
    scale = run_metadata.sim_time_scale_of(deployed.plan) if settings.embedded else None
    meta = {  # what served it: the server (GET /version) and the testbed asked, fixtures/served_by.py
        **lifecycle.metadata(
            kube, deployed, settings, scale, engine=_testbed_engine(settings), server_url=forward.balancer.url
        ),
        "endpoint": forward.endpoint_label,
    }
    try:
        yield BenchTarget(forward.url, deployed.plan.info.model or "", meta, forward.balancer.url)
    finally:
        forward.stop()


def _testbed_engine(settings: Settings) -> str | None:
    """The engine the run's own testbed was started with (asked of the testbed first: run_metadata.discover)."""
    return settings.engine if settings.embedded else None


# the comparison report and the regression gate, once every topology has run -------------------------------
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In the controlling process: compare the run's benchmark results (Markdown on the terminal and in
    comparison.md, HTML in report.html) and, with --baseline, gate them; a regression makes the exit code 1."""
    config = session.config
    if getattr(config, "workerinput", None) is not None:
        return
    from fixtures.deployment_plugin import RUN_ID
    from reports.compare import compare, stored_slo
    from reports.gate import GateInputError, gate
    from reports.gate_report import render_gate_markdown
    from reports.html import render_html
    from reports.markdown import render_comparison_markdown
    from reports.schema import SchemaError, read_result

    settings = config.stash[SETTINGS]
    directory = settings.artifacts / config.stash[RUN_ID]
    files = sorted(directory.glob("benchmark-*.json"))
    if not files:
        return
    results = [read_result(f) for f in files]
    names = [f.stem.removeprefix("benchmark-") for f in files]
    # one run's topologies; any mix is named in it, a client-bound level tagged [INVALID] (the gate refuses it)
    slo, slo_note = stored_slo(results)  # the session's --slo (or its defaults), as each level stored it
    comparison = compare(results, names, slo, allow_mixed=True, allow_invalid=True, slo_note=slo_note)
    markdown = render_comparison_markdown(comparison)
    (directory / "comparison.md").write_text(markdown)
    (directory / "report.html").write_text(render_html(results, names, comparison, title="Benchmark report"))
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter is not None else print
    say("")
    for line in markdown.splitlines():
        say(line)
    say(f"[lws-vllm] comparison: {directory / 'comparison.md'}; report: {directory / 'report.html'}")
    if not settings.baseline:
        _no_sim_in_real_outputs(session, results, directory, say)
        return
    try:
        report = gate(
            [read_result(p) for p in settings.baseline],
            results,
            sources=([str(p) for p in settings.baseline], [f.name for f in files]),
            strict=settings.gate_strict,
        )
    except (SchemaError, GateInputError) as exc:
        say(f"[lws-vllm] gate: {exc}")
        session.exitstatus = 2
        _no_sim_in_real_outputs(session, results, directory, say)
        return
    (directory / "gate.md").write_text(render_gate_markdown(report))
    if report.regressions:
        names_ = ", ".join(sorted({c.metric for c in report.regressions}))
        say(f"[lws-vllm] REGRESSION against the baseline: {names_} (see {directory / 'gate.md'})")
        session.exitstatus = 1
    elif not report.passed:  # a level or metric the baseline has and this run lacks; with --strict, unclear
        names_ = ", ".join(sorted({f"{c.level} {c.metric} ({c.verdict})" for c in report.failures}))
        say(f"[lws-vllm] FAILED against the baseline: {names_} (see {directory / 'gate.md'})")
        session.exitstatus = 1
    else:
        say(f"[lws-vllm] gate passed against {len(settings.baseline)} baseline file(s)")
    _no_sim_in_real_outputs(session, results, directory, say)


def _no_sim_in_real_outputs(session: pytest.Session, results: list[Any], directory: Any, say: Any) -> None:
    """A run real vLLM served whose results or reports say "sim" fails (exit 1), naming the file and text."""
    from suite.benchmark.real_engine_outputs import check_outputs, run_outputs, served_by_real_engine

    if not served_by_real_engine(results):
        return
    found = check_outputs(run_outputs(directory))
    if found:
        say(f"[lws-vllm] {found[0].message()}" + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
        session.exitstatus = session.exitstatus or 1
