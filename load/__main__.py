import sys

from load.cli import main
from plumbing.exit_codes import run_cli

sys.exit(run_cli(main, "python -m load"))
