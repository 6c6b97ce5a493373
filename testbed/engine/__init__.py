"""The vLLM engine simulator: an OpenAI-compatible server that answers, logs and paces tokens like vLLM.

It is a fixture of the suite (the testbed runs one per LWS group), not the product.

Entry points:
- `python -m testbed.engine MODEL --port P ...`: the `vllm serve` command line plus simulator flags
  (`cli.py`). Exit 0 when stopped by SIGTERM/SIGINT, 1 when vLLM would fail (start-up failure or the engine
  dying while serving), 2 for a bad command line. The port is bound only after the simulated start-up;
  `--status-file` reports starting / ready (with the bound port) / failed / stopped meanwhile.
- `launch.parse_launch(command, args, env, image=...)`: a pod's container command and env as a typed
  `LaunchSpec`; `LaunchSpec.engine_argv(port=..., ...)` turns a leader's spec into that command line.
- `simulate.simulate(...)`: the discrete-event simulation of the batch scheduler, for throughput figures
  without wall-clock pacing; `python -m testbed.engine.bench` prints them beside a roofline.

Where things are: the performance model in `hardware.py` (GPUs, fabrics), `model_specs.py` (model
shapes), `calibration/` + `data/` (measured shards), `shard_costs.py` (one block on one GPU),
`perf_model.py` (one step of the topology, memory), `scheduler.py` (continuous batching and the
pipeline), `published.py` (the published figures as scenarios); the served process in `server.py`
(HTTP routes), `protocol.py` (request bodies), `request_errors.py` (refusals, error shape),
`request_limits.py` (context and sampling checks), `request_state.py` (a request in flight, its metrics),
`responses.py` (JSON bodies), `stream_frames.py` (SSE frames), `tokens.py` (token counts, text),
`metrics.py` (Prometheus; its families in `metric_families.py`, `http_metrics.py`), `runner.py` (pacing),
`startup_logs.py` (start-up lines), `profiles.py` (vLLM versions), `logsink.py` (CRI log files), `signals.py` (what
the bridge signals besides a stop: a lost peer), `app.py`
(one process); `capacity.py` measures the process's ceiling.
"""
