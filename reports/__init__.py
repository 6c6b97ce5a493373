"""Result files of the suite and what is made from them.

Modules, one responsibility each (import the one you need; this package imports nothing eagerly so that
``load`` can use ``reports.schema`` without paying for plotting):

- ``schema``: the versioned result file (pydantic), read and written by every producer.
- ``metrics``: the catalogue of metrics: name, unit, formula, direction, and how to read each from a level.
- ``runs``: names, topologies and GPU counts of runs; ``levels``: labels and keys of load levels.
- ``markdown``: per-run Markdown for CI logs; ``html``: the self-contained HTML page; ``plots``: its SVG figures.
- ``compare``: side-by-side per GPU, Pareto frontier, best setting under SLOs.
- ``gate``: the regression gate for nightly jobs.
- ``cli``: ``python -m reports render | compare | gate``.
"""
