"""The async load generator: streaming OpenAI-compatible load with exact client-side metrics.

Kept free of imports on purpose (the Locust locustfile runs in a gevent-patched process and must not
pull aiohttp in by importing this package). The API lives in its modules:

- ``load.config``: ``SweepConfig``, ``Level``, ``RandomWorkload``, ``SharedPrefixWorkload``,
  ``ShareGptWorkload``, ``Timeouts``, ``levels_from_lists``, ``ConfigError``
- ``load.runner``: ``run_sweep`` (async), ``run_sweep_sync``, ``SweepRun``, ``Progress``
- ``load.level_runner``: ``run_level``, ``LevelRun``, ``Progress`` (one level of a sweep)
- ``load.endpoint_probe``: ``probe_endpoint``, ``EndpointUnreachable``, ``ModelNotServed``
- ``load.metrics``: ``level_metrics(records, slo)``: the schema's LevelMetrics from request records
- ``load.records``: ``RequestRecord``; ``load.vllm_format``: vLLM bench serve JSON
- ``load.client_check``: ``client_check``, ``LoopMonitor``: did the client keep up (each level's verdict)
- ``load.repeat_run``: ``run_repeats`` (``--repeats N``), folded with ``reports.repeats``
- ``python -m load run ...`` (``load.cli``). README.md documents all of it.
- ``load.locust``: Locust as a second generator, ``python -m load.locust`` (docs/locust.md); its
  locustfile runs only in Locust's own processes
- ``load.bench``: the generator's own instruments, not part of it: ``python -m load.bench.reference_server``
  (a streaming server with exactly known timing) and ``python -m load.bench.capacity``.
"""
