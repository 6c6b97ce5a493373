"""The per-GPU cost model against measured shards: the measurements, and the honest check of the roofline.

`data/h100_calibration.json` and `data/h200_calibration.json` (in `testbed/engine/`) were measured on one GPU
with CUDA events (docs/sources.md says how). A shard is one transformer block as one GPU of an N-way TP group
holds it, keyed "<model>/tp<N>", e.g. "llama-3.1-405b/tp8".

- `measurements.py`: the files' records, loaded (`load_calibration`); `shard_costs.py` corrects the roofline
  with them.
- `anchors.py`: an anchor is one measured number of a file, and what a cost model predicts for it.
- `roofline_fit.py`: the roofline's constants fitted to a set of anchors.
- `validation.py`: the scenarios that fit on some anchors and validate on others, never the same anchor for
  both, and the prediction error on every validation anchor.
- `report.py`: that error as markdown; `python -m testbed.engine.calibration` prints it (docs/calibration.md
  has the tables and the bounds the tests hold the model to).
"""
