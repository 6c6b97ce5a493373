"""`python -m testbed.bridge --kubeconfig PATH --state-dir DIR`: run the bridge until SIGTERM (started by the
testbed; see testbed/bridge/run.py)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from kubernetes import config

from testbed.bridge.engine_process import SubprocessLauncher
from testbed.bridge.pods import DEFAULT_TIME_SCALE
from testbed.bridge.run import Bridge


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bridge")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help="engine pacing: 1 = real time, 0 = as fast as possible (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    api = config.new_client_from_config(config_file=str(args.kubeconfig))
    bridge = Bridge(api, SubprocessLauncher(args.state_dir / "engines", args.time_scale), args.state_dir)

    def shutdown(signum: int, frame: FrameType | None) -> None:
        del frame
        logging.getLogger("bridge").info("signal %d: stopping engines", signum)
        bridge.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    worker = threading.Thread(target=bridge.run, name="bridge", daemon=True)
    worker.start()
    worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
