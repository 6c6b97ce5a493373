"""``python -m load.locust``: see load/locust/run.py."""

import sys

from load.locust.run import main

sys.exit(main())
