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
from testbed.bridge.kwok_rules import KwokRules
from testbed.bridge.pod_uids import Addresses
from testbed.bridge.podnet import PodNetwork
from testbed.bridge.pods import DEFAULT_TIME_SCALE
from testbed.bridge.real_pods import RealPods
from testbed.bridge.run import Bridge, LogFiles
from testbed.bridge.sim_pods import SimSandboxes
from testbed.vllm_cpu.install import installed


def _uid_range(text: str) -> range:
    start, sep, stop = text.partition(":")
    if not sep or not start.isdigit() or not stop.isdigit() or int(start) >= int(stop):
        raise argparse.ArgumentTypeError(f"expected START:STOP user ids (START < STOP), got {text!r}")
    return range(int(start), int(stop))


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
    parser.add_argument("--engine", choices=["sim", "vllm-cpu"], default="sim")
    parser.add_argument(
        "--netns", help="with --engine vllm-cpu: the pod network namespace (created by the testbed)"
    )
    parser.add_argument("--testbed-name", default="default", help="the testbed's name")
    parser.add_argument(
        "--pod-uids",
        type=_uid_range,
        default=range(0),
        help="START:STOP, the user ids the testbed claimed for its pods (testbed/bridge/pod_uids.py)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    api = config.new_client_from_config(config_file=str(args.kubeconfig))
    real_pods = None
    if args.engine == "vllm-cpu":
        engine = installed()
        if engine is None or not args.netns or not args.pod_uids:
            parser.error(
                "--engine vllm-cpu needs the installed engine (python -m testbed.vllm_cpu install), --netns "
                "and --pod-uids"
            )
        network, addresses = PodNetwork(args.netns), Addresses(args.pod_uids)

        def real_pods(rules: KwokRules, logs: LogFiles) -> RealPods:
            return RealPods(api, rules, logs, args.state_dir, engine, network, addresses)

    sandboxes = None
    if args.engine == "sim" and SimSandboxes.available() and args.pod_uids:
        addresses = Addresses(args.pod_uids)

        def sandboxes(rules: KwokRules) -> SimSandboxes:
            return SimSandboxes(api, rules, addresses)

    bridge = Bridge(
        api,
        SubprocessLauncher(args.state_dir / "engines", args.time_scale),
        args.state_dir,
        real_pods,
        sandboxes,
    )

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
