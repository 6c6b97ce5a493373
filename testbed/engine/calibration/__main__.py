"""`python -m testbed.engine.calibration`: fit the roofline on some anchors, print its error on the others."""

import sys

from testbed.engine.calibration.report import main

sys.exit(main())
