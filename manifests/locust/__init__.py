"""In-cluster Locust master and workers (render.py). Imports nothing else of ours; the caller passes the
locustfile's text (load/locust_incluster.py reads load/locustfile.py and load/locust_stream.py)."""

from manifests.locust.render import (
    LOCUST_IMAGE,
    MASTER_PORT,
    PORT_ENV,
    RUN_LOCALLY,
    WEB_PORT,
    LocustSpec,
    render,
)

__all__ = ["LOCUST_IMAGE", "MASTER_PORT", "PORT_ENV", "RUN_LOCALLY", "WEB_PORT", "LocustSpec", "render"]
