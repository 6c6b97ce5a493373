"""``python -m load.locust`` (``nox -s locust -- ...``): Locust streaming users against vLLM, and the
result in the suite's schema, computed from every request's raw timings with load/metrics.py.

Targets (docs/locust.md): ``--endpoint URL``; or ``--namespace NS`` [``--service``, ``--service-port``,
``--kubeconfig``, ``--context``]: a ``kubectl port-forward`` to the vLLM Service, Locust on this machine;
or that plus ``--in-cluster``: Locust's master and workers as pods in the cluster (load/locust/incluster.py).
Locust itself only ever runs in child processes: importing it monkey-patches a process with gevent.

Exit codes: 0 the run finished within the SLOs given (failed requests are data in the result); 1 an SLO
was breached (the ``--slo-percentile`` of TTFT, TPOT or E2EL over the raw samples is above its
threshold), or Locust recorded no request at all; 2 usage or input error (one line); 3 the endpoint or
cluster could not be reached, or lacks the Service; 130 interrupted (the partial result is written).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from load.config import ConfigError
from load.locust.kubectl import ClusterError, Kubectl
from load.locust.local import LocalRun, run_local
from load.locust.merge import RawRecordsError, RawRun, locust_result, read_raw_files, slo_breaches
from load.locust.options import PROG, LocustRunConfig, build_parser, config_from_args
from plumbing.kubectl import KubectlNotFound, find_kubectl
from plumbing.port_forward import PortForwardError, port_forward
from plumbing.wait import WaitTimeout
from reports.schema import LoadSpec, Result, RunMetadata

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PROBE_TIMEOUT_S = 10.0
FORWARD_TIMEOUT_S = 30.0  # kubectl port-forward saying it forwards, tried again until then


class Unreachable(RuntimeError):
    pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        if config.render_only:
            return _render_only(config)
        return _run(config)
    except ConfigError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except (Unreachable, ClusterError, PortForwardError, WaitTimeout) as exc:
        return _fail(EXIT_UNREACHABLE, str(exc))
    except RawRecordsError as exc:
        return _fail(EXIT_FAILED, f"the raw records cannot be read: {exc}")
    except KeyboardInterrupt:  # outside the local run (which handles its own): nothing was collected
        return _fail(EXIT_INTERRUPTED, "interrupted; no result written")


def _run(config: LocustRunConfig) -> int:
    started_at = _now()
    keep_raw = config.raw_dir is not None
    raw_dir = config.raw_dir or Path(tempfile.mkdtemp(prefix="locust-raw-"))
    try:
        model, version, raw, local, endpoint = _execute(config, raw_dir)
        if not raw.records:
            return _fail(EXIT_FAILED, _nothing_recorded(local, raw_dir if keep_raw else None))
        load = LoadSpec(
            api=config.api, concurrency=config.users, duration_s=float(config.run_time_s),
            input_len=config.input_len, output_len=config.output_len, workload="random", seed=config.seed,
            slo=dict(config.slo), generator="locust", length_unit="words",  # its prompts: words (locustfile.py)
        )  # fmt: skip
        metadata = RunMetadata(
            label=config.label,
            model=model,
            endpoint=endpoint,
            vllm_version=version,
            started_at=started_at,
            finished_at=_now(),
        )
        result = locust_result(raw, load, metadata, started_at)
        assert config.out is not None  # checked with the options
        result.write(config.out)
    finally:
        if not keep_raw:
            shutil.rmtree(raw_dir, ignore_errors=True)
    _summary(result, raw, config)
    _say(f"wrote {config.out}" + (f"; raw records in {raw_dir}" if keep_raw else ""))
    if local is not None and local.interrupted:
        _say("interrupted: the result holds every request recorded so far")
        return EXIT_INTERRUPTED
    breaches = slo_breaches(raw.records, config.slo, config.slo_percentile)
    for breach in breaches:
        _say(f"SLO breached: {breach}")
    return EXIT_FAILED if breaches else EXIT_OK


def _execute(config: LocustRunConfig, raw_dir: Path) -> tuple[str, str | None, RawRun, LocalRun | None, str]:
    """Run the load where the config says; return (model, vLLM version, records, local run, endpoint)."""
    if config.endpoint is not None:
        model, version = probe(config.endpoint, config.model)
        local = run_local(config, config.endpoint, model, raw_dir, _say)
        return model, version, _local_records(raw_dir), local, config.endpoint
    cluster = config.cluster
    assert cluster is not None
    try:
        binary = find_kubectl(cluster.kubectl)
    except KubectlNotFound as exc:
        raise ClusterError(f"{exc} or give --kubectl PATH") from None
    kubectl = Kubectl(str(binary), cluster.kubeconfig, cluster.context)
    if kubectl.get("service", cluster.service, cluster.namespace) is None:
        raise ClusterError(f"no Service {cluster.service} in namespace {cluster.namespace} (give --service)")
    target = f"svc/{cluster.service}"
    if config.in_cluster:
        from load.locust.incluster import run_in_cluster  # only this mode needs the manifests

        with port_forward(
            kubectl.argv(), cluster.namespace, target, cluster.service_port, timeout=FORWARD_TIMEOUT_S
        ) as url:
            model, version = probe(url, config.model)
        run = run_in_cluster(config, kubectl, model, raw_dir, _say)
        return model, version, run.raw, None, cluster.in_cluster_url
    with port_forward(
        kubectl.argv(), cluster.namespace, target, cluster.service_port, timeout=FORWARD_TIMEOUT_S
    ) as url:
        _say(f"kubectl port-forward {target} -n {cluster.namespace}: {url}")
        model, version = probe(url, config.model)
        local = run_local(config, url, model, raw_dir, _say)
    return model, version, _local_records(raw_dir), local, cluster.in_cluster_url


def _local_records(raw_dir: Path) -> RawRun:
    return read_raw_files(p for p in raw_dir.glob("*.jsonl") if p.name != "collected.jsonl")


def probe(base_url: str, model: str | None) -> tuple[str, str | None]:
    """Check the endpoint answers; return the model to use (the one it serves if none was given) and
    its vLLM version if it says. Unreachable -> exit 3; a model it does not serve -> exit 2."""
    base = base_url.rstrip("/")
    try:
        served = _model_ids(_get_json(base + "/v1/models"))
    except urllib.error.HTTPError:
        served = None
    except (OSError, ValueError) as exc:
        raise Unreachable(
            f"cannot reach {base_url} ({exc}); is the server up and the port forwarded?"
        ) from None
    if model is None:
        if not served or len(served) != 1:
            raise ConfigError(
                f"give --model: {base_url} serves {', '.join(served or []) or 'no model it lists'}"
            )
        model = served[0]
    elif served is not None and model not in served:
        raise ConfigError(
            f"{base_url} does not serve model {model!r}; it serves: {', '.join(served) or 'nothing'}"
        )
    try:
        version = _get_json(base + "/version").get("version")
    except (OSError, ValueError, AttributeError):
        version = None
    return model, version if isinstance(version, str) else None


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
        return dict(json.load(response))


def _model_ids(models: dict) -> list[str] | None:  # type: ignore[type-arg]
    data = models.get("data")
    if not isinstance(data, list):
        return None
    return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _render_only(config: LocustRunConfig) -> int:
    from load.locust.incluster import locust_spec, new_name
    from load.locust.manifests import render

    if config.model is None:
        raise ConfigError("--render-only needs --model (nothing is asked of the cluster)")
    import yaml

    sys.stdout.write(
        yaml.safe_dump_all(render(locust_spec(config, config.model, new_name())), sort_keys=False)
    )
    return EXIT_OK


def _nothing_recorded(local: LocalRun | None, raw_dir: Path | None) -> str:
    where = f"; Locust's logs are in {raw_dir}" if raw_dir is not None else " (keep them with --raw-dir DIR)"
    if local is None:
        return "the in-cluster run recorded no request" + where
    if local.timed_out:
        return "Locust did not finish in time and recorded no request" + where
    return f"Locust recorded no request (exit code {local.master_code})" + where


def _summary(result: Result, raw: RawRun, config: LocustRunConfig) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    m = result.results[0].metrics
    r = m.requests
    _say(
        f"locust ({config.users} users, {len(raw.workers)} process(es) sent requests): {r.completed} completed, "
        f"{r.failed} failed"
        + (f" {dict(r.errors_by_reason)}" if r.errors_by_reason else "")
        + f" in {ms(m.duration_s)} s | TTFT p50 {ms(m.ttft_ms.p50)} p99 {ms(m.ttft_ms.p99)} ms"
        f" | TPOT p50 {ms(m.tpot_ms.p50)} ms | E2EL p50 {ms(m.e2el_ms.p50)} ms"
        f" | {ms(m.throughput.output_tokens_per_s)} output tok/s"
    )
    if config.workers and len(raw.workers) < config.workers:
        _say(f"note: only {len(raw.workers)} of {config.workers} workers sent requests")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fail(code: int, message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
