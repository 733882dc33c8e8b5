"""The one place that runs subprocesses.

Why one place: it is where we guarantee that no secret reaches a child's argv (secrets
travel by environment only), that what we print of a child's output is masked, and
that every command shows up in progress output the same way.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from pipelines import console
from pipelines.errors import CiKitError


class SecretInArgv(CiKitError):
    exit_code = 1


def _carries(arg: str, secret: str) -> bool:
    """Whether one argument carries the secret: the whole argument, `KEY=secret`/`--flag=secret`,
    or a URL's `:secret@`. Not a mere substring: a path or version may contain a password
    that is an ordinary word, and refusing those would break runs for nothing."""
    return arg == secret or arg.endswith("=" + secret) or f":{secret}@" in arg


def _check_argv(argv: Sequence[str]) -> None:
    for s in console.secrets():
        if any(_carries(a, s) for a in argv):
            raise SecretInArgv("refusing to start a command with a secret in its arguments",
                               "secrets travel by environment or file; this is a bug in ci-kit")


# Never handed to a child: the secrets, the files that hold them, the pipe they came over.
SECRET_VARS = ("CI_KIT_PASSWORD", "CI_KIT_PASSWORD_FILE", "CI_KIT_REGISTRY_PASSWORD", "CI_KIT_REGISTRY_PASSWORD_FILE",
               "CI_KIT_SECRETS_FD")


def child_env(extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict[str, str]:
    """The environment for ci-kit's own tools (git, uv, build, twine): ours minus every secret
    and pointer to one, plus extra. The product's tests get far less: see sandbox.py."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS and k not in drop}
    env.update(extra or {})
    return env


def run(argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        check: bool = False, show: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv, capture stdout+stderr (merged, in order) as text, return the result.

    The caller decides what a non-zero exit means: most stages turn it into a
    CiKitError carrying the child's own output.
    """
    argv = [str(a) for a in argv]
    _check_argv(argv)
    if show:
        console.step("$ " + shlex.join(argv))
    proc = subprocess.run(argv, cwd=cwd, env=dict(env) if env is not None else child_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    if check and proc.returncode != 0:
        console.detail(proc.stdout)
        raise CiKitError(f"command failed ({proc.returncode}): {shlex.join(argv)}")
    return proc


def spawn(argv: Sequence[str], *, log: Path, cwd: Path | str | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-running detached child (the embedded devpi-server) logging to a file."""
    argv = [str(a) for a in argv]
    _check_argv(argv)
    console.step("$ " + shlex.join(argv) + f"  (log: {log})")
    fh = open(log, "ab")
    return subprocess.Popen(argv, cwd=cwd, env=dict(env) if env is not None else child_env(),
                            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
