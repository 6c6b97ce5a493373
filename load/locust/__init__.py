"""Locust as a second load generator: streaming users, their raw records, and the suite's result from them.

``python -m load.locust`` (``nox -s locust -- ...``; docs/locust.md). Kept free of imports, like ``load``:
Locust itself runs only in child processes, since importing it monkey-patches a process with gevent. The
modules:

- ``run``: the command (``__main__`` calls ``run.main``); ``options``: its parser and ``LocustRunConfig``
- ``local``: Locust on this machine (one process, or a master and W workers)
- ``incluster``: Locust's master and workers as pods, ``manifests`` the objects it applies, ``kubectl``
  the few kubectl calls it makes
- ``merge``: the raw records of every process into the suite's result schema, and the SLO verdict
- ``locustfile``: the Locust users; ``locust_stream``: their standard-library helpers (prompts, SSE
  parsing, raw records); ``locust_options``: the locustfile's options, their checks and the SLO verdict
  by Locust's statistics; ``locust_collect``: where raw records go, and the master's collection of them.
  These four are what a stock ``locustio/locust`` image runs (``incluster.SHIPPED_FILES``): they import
  nothing of the suite, and the locustfile imports its helpers as top-level sibling modules.
"""
