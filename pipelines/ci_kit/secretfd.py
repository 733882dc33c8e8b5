"""ci-kit takes its secrets out of its own environment before it does anything else.

Why: Linux shows the environment a process was *started* with in /proc/<pid>/environ for
as long as it runs, to every process of the same user, and deleting a variable from
os.environ does not change that. Any process of the same identity that can name ci-kit's
pid (a product test in the fallback mode of sandbox.py, a build backend in job 1) could
read CI_KIT_PASSWORD there. So when a secret variable is set, `ci-kit` re-executes itself
at once, same interpreter and argv, without it; the values travel over a pipe that the new
image inherits and reads once (then closes). The pipe is gone before any child starts.

The cost is one more interpreter start, and only when a secret is in the environment.
"""

from __future__ import annotations

import json
import os
import sys

VARS = ("CI_KIT_PASSWORD", "CI_KIT_REGISTRY_PASSWORD")
FD_VAR = "CI_KIT_SECRETS_FD"
_MAX = 60_000  # a pipe holds 64 KiB without a reader; secrets are far smaller

_inherited: dict[str, str] | None = None


def reexec_without_secrets() -> None:
    """Replace this process by itself minus the secret variables (no return on success).
    Does nothing when none is set, or when this already is the re-executed process."""
    found = {k: os.environ[k] for k in VARS if os.environ.get(k)}
    if not found or FD_VAR in os.environ or not getattr(sys, "orig_argv", None):
        return
    data = json.dumps(found).encode()
    if len(data) > _MAX:
        return
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    os.set_inheritable(r, True)
    env = {k: v for k, v in os.environ.items() if k not in VARS}
    env[FD_VAR] = str(r)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError:  # cannot re-execute (odd embedding): carry on with the secrets where they are
        os.close(r)


def inherited() -> dict[str, str]:
    """The secrets handed over by reexec_without_secrets(); {} when there was no hand-over."""
    global _inherited
    if _inherited is None:
        _inherited = {}
        fd = os.environ.pop(FD_VAR, "")
        if fd.isdigit():
            chunks = []
            try:
                while chunk := os.read(int(fd), 65536):
                    chunks.append(chunk)
                os.close(int(fd))
                data = json.loads(b"".join(chunks) or b"{}")
                _inherited = {k: v for k, v in data.items() if k in VARS and isinstance(v, str)}
            except (OSError, ValueError):
                _inherited = {}
    return dict(_inherited)
