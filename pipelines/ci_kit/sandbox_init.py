"""First process inside a test run's new namespaces (see sandbox.py): arrange the mounts, then
exec the test command. Standalone on purpose (run as `python -I sandbox_init.py SPEC -- ARGV`):
it imports nothing of ci-kit and only the standard library, so it starts fast and sees no
product code.

Why the detour through file descriptors: ci-kit's home is covered by an empty tmpfs (so its
~/.netrc, ~/.pypirc, ~/.devpi, server passwords... are simply not there), but the run may
need things that live under it (a pyenv interpreter, ci-kit's own environment, a TMPDIR).
Those are opened first (O_PATH) and bound back from /proc/self/fd after the cover is on.
The cover is mode 0755, which also lets a throwaway uid through a 0700 /root.
"""

import json
import os
import subprocess
import sys


def _mount(*args: str, fds: tuple[int, ...] = ()) -> None:
    # util-linux's mount, the tool for this; exit 121 tells ci-kit the sandbox failed
    if subprocess.run(["mount", *args], pass_fds=fds).returncode != 0:
        print(f"ci-kit sandbox: mount {' '.join(args)} failed", file=sys.stderr)
        sys.exit(121)


def main() -> None:
    spec = json.loads(sys.argv[1])
    argv = sys.argv[3:]  # after "--"
    kept = {}
    for path in spec["keep"]:
        if any(path == c or path.startswith(c.rstrip("/") + "/") for c in spec["cover"]) and os.path.exists(path):
            kept[path] = os.open(path, os.O_PATH)
    for cover in spec["cover"]:
        _mount("-t", "tmpfs", "-o", "mode=0755,size=64k", "ci-kit-home", cover)
    for path, fd in sorted(kept.items()):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount("--no-canonicalize", "--rbind", f"/proc/self/fd/{fd}", path, fds=(fd,))  # the fd, not its old name
        os.close(fd)
    for path in spec["hide"]:
        if os.path.isdir(path):
            _mount("-t", "tmpfs", "-o", "mode=0,size=4k", "ci-kit-hidden", path)
        elif os.path.exists(path):
            _mount("--bind", "/dev/null", path)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
