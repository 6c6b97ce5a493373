"""``python -m load.locust``: see load/locust/run.py."""

import sys

from load.locust.run import main
from plumbing.exit_codes import run_cli

sys.exit(run_cli(main, "python -m load.locust"))
