"""`python -m testbed.engine MODEL ...`: run one simulated vLLM engine (see `testbed.engine.cli`)."""

import sys

from testbed.engine.app import main

sys.exit(main())
