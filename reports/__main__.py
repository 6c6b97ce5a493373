import sys

from plumbing.exit_codes import run_cli
from reports.cli import main

sys.exit(run_cli(main, "python -m reports"))
