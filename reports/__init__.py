"""Result files of the suite and what is made from them.

Modules, one responsibility each. This package imports nothing eagerly, so ``load`` can use
``reports.schema`` without paying for plotting; import the module you need:

- ``schema``: the versioned result file (pydantic), written by every producer, read by everything here.
- ``metrics``: the metric catalogue: key, unit, formula, direction, and how to read it from a level.
- ``runs``, ``levels``: names, topologies and GPU counts of runs; labels and keys of load levels.
- ``provenance``: what produced a run's numbers (engine, simulator time scale, GPU product, testbed): sim
  tags, the refusal to mix runs, and simulated runs' figures in modelled time.
- ``text``, ``tables``: number formatting and aligned tables; the tables of one run.
- ``markdown``: the report for CI logs; ``html``, ``plots`` and ``timeline_plot`` (sharing ``plot_style``): the
  self-contained page and its SVG figures.
- ``compare``, ``compare_tables``: per GPU side by side, Pareto frontier, best setting under SLOs.
- ``gate``, ``gate_verdict``, ``gate_report``: the regression gate for nightly jobs, its verdict on one metric,
  and its report.
- ``cli``: ``python -m reports render | compare | gate`` (README.md documents it).
"""
