"""`python -m testbed.bridge.suite_sandbox SPEC.json`, run as root inside `ip netns exec NETNS` (whose private
mount namespace keeps every mount here from the host): make the file system a container of the suite's image
sees, drop to the pod's user, and exec its command (suite_pods.py writes SPEC).

- `/root` is an empty tmpfs (the image has no home for its user), with only the directories the image's
  programs live in bound back, read-only (Python and nox: the testbed's own, standing in for the image's);
- `/run` is a fresh tmpfs holding the ServiceAccount's token, CA and namespace at the standard path
  `/var/run/secrets/kubernetes.io/serviceaccount/`, read-only, as the kubelet projects them;
- the checkout (the image's working directory) is bound read-only onto itself;
- `/tmp` and `/var/tmp`: the pod's emptyDir volumes where it mounts them; else, with
  `readOnlyRootFilesystem`, read-only; else a fresh writable tmpfs (the image's own /tmp);
- other emptyDir volumes are bound at their mountPath, which must be an existing directory here.

Then: no supplementary groups, the pod's gid and uid (which drops every capability), no_new_privs, exec.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
PR_SET_NO_NEW_PRIVS = 38
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:  # fmt: skip
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _bind(source: str, target: str, read_only: bool) -> None:
    Path(target).mkdir(parents=True, exist_ok=True)
    _mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        _mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def _tmpfs(target: str) -> None:
    _mount("tmpfs", target, "tmpfs", 0, "mode=1777")


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    # Sources under /root and /run are opened before those are covered, and bound from the open descriptor.
    held = {src: os.open(src, os.O_PATH) for src, _, _ in spec["binds"]}
    sa_fd = os.open(spec["service_account"], os.O_PATH) if spec.get("service_account") else None
    _mount("tmpfs", "/root", "tmpfs", 0, "mode=755")
    _mount("tmpfs", "/run", "tmpfs", 0, "mode=755")
    # the image's /tmp and /var/tmp come first, so that a bind under them (a checkout in /tmp, as a fresh clone
    # made with mktemp is) lands on them instead of being hidden by them; made read-only only after the binds
    covered = {target for _, target, _ in spec["binds"]}
    tmps = [tmp for tmp in ("/tmp", "/var/tmp") if tmp not in covered]
    for tmp in tmps:
        _tmpfs(tmp)
    for src, target, read_only in spec["binds"]:
        _bind(f"/proc/self/fd/{held[src]}", target, read_only)
    if sa_fd is not None:
        _bind(f"/proc/self/fd/{sa_fd}", "/run/secrets/kubernetes.io/serviceaccount", True)
    if spec["read_only_root"]:
        for tmp in tmps:
            _mount("none", tmp, None, MS_REMOUNT | MS_RDONLY)
    os.chdir(spec["cwd"])
    os.setgroups([])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    try:
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except OSError as exc:
        print(f"testbed: cannot run {spec['argv'][0]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
