"""The signals the bridge sends a running engine besides SIGTERM (stop): kept here, standard library only, so the
bridge names them without importing the engine's server."""

from __future__ import annotations

import signal

# A pod of the engine's group went away (deleted, or its container crashed): the ranks there are lost.
PEER_LOST_SIGNAL = signal.SIGUSR1
