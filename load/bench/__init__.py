"""The load generator's own instruments: the reference server with exactly known timing, and the capacity benchmark.

Not part of the generator: its self-tests (``tests/load/``) and ``python -m load.bench.capacity`` use them.

- ``python -m load.bench.reference_server``: the streaming server (``reference_server``, the CLI and the
  accept loop; ``reference_config``: its options and faults; ``reference_handlers``: the routes;
  ``reference_stream``: one streamed response; ``reference_http``: the raw HTTP/1.1 connection)
- ``python -m load.bench.capacity``: does ``load run`` keep up with the minimal aiohttp loop
  (``minimal``) and, optionally, guidellm (``peer``)
"""
