"""The one place that runs subprocesses.

Why one place: it is where we guarantee that no secret reaches a child's argv (secrets
travel by environment only), that what we print of a child's output is masked, and
that every command shows up in progress output the same way. It is also where ci-kit
keeps track of its children, so that a cancelled run (SIGTERM from CI, Ctrl-C) leaves
nothing behind: every child starts in a session (and process group) of its own and is
registered until it ends; `cancel()` stops the whole group of each, grandchildren
included (uv's builds, pytest's workers), and no new child starts after it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ci_kit import console, procs
from ci_kit.errors import CiKitError, Interrupted, TimedOut

OWNER_FILE = ".ci-kit-owner"  # in each temporary folder: "PID STARTTIME" of the ci-kit that made it

_children: dict[int, subprocess.Popen[str]] = {}  # pgid -> child, while it runs
_lock = threading.RLock()  # re-entrant: the signal handler may run while the main thread holds it
_cancelled: int = 0  # the signal that cancelled this process, 0 while none did
_local = threading.local()


class SecretInArgv(CiKitError, code=1):
    """A secret was about to go on a child's command line: a bug in ci-kit, so exit 1."""


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
               "CI_KIT_SECRETS_FD", "CI_KIT_SERVER_STORAGE_PASSWORD")


def child_env(extra: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict[str, str]:
    """The environment for ci-kit's own tools (git, uv, build, twine): ours minus every secret
    and pointer to one, plus extra. The product's tests get far less: see sandbox.py."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARS and k not in drop}
    env.update(extra or {})
    return env


class Run(Protocol):
    """The call shape of `run`, as the stages use it. A stage that starts children takes
    one (default: `run` itself), so its planning and its reading of a child's output can
    be tested with a stand-in that starts nothing (tests/unit)."""

    def __call__(self, argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
                 show: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]: ...


def run(argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        show: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run argv, capture stdout+stderr (merged, in order) as text, return the result.

    The caller decides what a non-zero exit means: most stages turn it into a
    CiKitError carrying the child's own output. Past `timeout` seconds the child's whole
    process group is killed and TimedOut is raised (never subprocess.TimeoutExpired).
    After cancel() it raises Interrupted instead of starting anything.
    """
    argv = [str(a) for a in argv]
    _check_argv(argv)
    _raise_if_cancelled()
    if show:
        console.step("$ " + shlex.join(argv))
    with _starting():
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env) if env is not None else child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        with _lock:
            _children[proc.pid] = proc
    try:
        _raise_if_cancelled(proc)  # a signal between the check above and the registration
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc.pid)
        _reap(proc)
        raise TimedOut(f"{Path(argv[0]).name} did not finish within {timeout:g}s and was stopped: {shlex.join(argv)[:200]}",
                       "look for a hung command above; a slow machine may need a longer limit") from None
    except BaseException:  # Interrupted (the handler has stopped the group already) or a bug
        if proc.poll() is None:
            stop_group(proc.pid)
        _reap(proc)
        raise
    finally:
        with _lock:
            _children.pop(proc.pid, None)
    _raise_if_cancelled()  # a child killed by cancel() is no result to act on
    return subprocess.CompletedProcess(argv, proc.returncode, out)


def telling_line(output: str, marks: str = "", *, skip: str = "", follow: int = 0, limit: int = 400,
                 empty: str = "no output") -> str:
    """The line of a child's output that best says why it failed, for a one-line error:
    the last line matching the regex `marks` (with up to `follow` lines after it, for tools
    that explain on the next lines), else the last line. Lines matching `skip` (noise such
    as a deprecation banner) are passed over. Every stage that quotes a failed child's
    output picks its line here, so the picking is the same everywhere."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and not (skip and re.search(skip, line))]
    picked = [i for i, line in enumerate(lines) if marks and re.search(marks, line)]
    if not picked:
        return lines[-1][:limit] if lines else empty
    parts = [line.lstrip("×╰─▶ ").strip() for line in lines[picked[-1]:picked[-1] + 1 + follow]]
    return " ".join(p for p in parts if p)[:limit]


def _reap(proc: subprocess.Popen[str]) -> None:
    """Collect a stopped child and close its pipe, bounded: a grandchild that left the
    group may still hold the pipe, and must not hang ci-kit."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def spawn(argv: Sequence[str], *, log: Path, cwd: Path | str | None = None,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-running detached child (the embedded devpi-server) logging to a file.

    It is meant to outlive ci-kit, so it is not registered for cancel(); the caller
    stops it if start-up is abandoned. The log file stays open in the child only.
    """
    argv = [str(a) for a in argv]
    _check_argv(argv)
    _raise_if_cancelled()
    console.step("$ " + shlex.join(argv) + f"  (log: {log})")
    with open(log, "ab") as fh, _starting():
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env) if env is not None else child_env(),
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    if _cancelled:
        stop_group(proc.pid)
        proc.wait()
        raise Interrupted(_cancelled)
    return proc


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """While a child is being started and registered, the signal handler must not raise
    in this thread (the child would run on, unknown to cancel()); it only sets the flag,
    and the caller raises right after, with the child in hand."""
    _local.starting = True
    try:
        yield
    finally:
        _local.starting = False


def starting() -> bool:
    """Whether this thread is between starting a child and registering it (see _starting)."""
    return bool(getattr(_local, "starting", False))


def _raise_if_cancelled(proc: subprocess.Popen[str] | None = None) -> None:
    if _cancelled:
        if proc is not None:
            stop_group(proc.pid)
        raise Interrupted(_cancelled)


def stop_group(*pgids: int, grace: float = 3.0) -> None:
    """SIGTERM to each process group, SIGKILL to what is left after `grace` seconds, and
    return only when no live member remains (bounded), so folders can be removed safely."""
    left = list(pgids)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pgid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            left = [g for g in left if procs.group_members(g)]
            if left:
                time.sleep(0.05)
        if not left:
            return


def cancelled() -> int:
    """The signal that cancelled this run, or 0."""
    return _cancelled


def cancel(signum: int) -> None:
    """Stop every running child's process group; no child starts after this.

    Called from the signal handler in the main thread; worker threads notice through
    _raise_if_cancelled. The flag is set before the registry is read and children are
    registered before the flag is read, so each child is stopped by one side or the other.
    """
    global _cancelled
    _cancelled = _cancelled or signum
    with _lock:
        pgids = list(_children)
    stop_group(*pgids)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[str]:
    """A temporary folder that is removed on exit, on SIGTERM/SIGINT (they unwind like an
    exception) and, after a SIGKILL, by the next ci-kit that calls this: each folder holds
    its owner's pid and start time, and folders of owners that are gone are removed, after
    stopping the processes the dead run left working in them."""
    sweep(prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / OWNER_FILE).write_text(f"{os.getpid()} {procs.start_time(os.getpid())} {procs.pid_namespace()}\n")
    try:
        yield str(path)
    finally:
        _remove(path)


def sweep(prefix: str, base: Path | None = None) -> list[Path]:
    """Remove leftovers of dead ci-kit runs: PREFIX* folders whose owner is gone."""
    removed: list[Path] = []
    if not procs.available():
        return removed  # without /proc a live owner cannot be told from a dead one: touch nothing
    namespace = procs.pid_namespace()
    for path in (base or Path(tempfile.gettempdir())).glob(prefix + "*"):
        try:
            pid_s, started, ns = [*(path / OWNER_FILE).read_text().split(), "", ""][:3]
            pid = int(pid_s)
        except (OSError, ValueError):
            continue  # not ours, or its owner has not written the marker yet
        if ns != namespace or not started:
            continue  # made in another container sharing this folder: its pids are not ours to judge
        if procs.alive(pid) and procs.start_time(pid) == started:
            continue
        left = procs.referencing(path)
        for child in left:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if procs.alive(p)]
        _remove(path)
        console.step(f"cleanup: removed {path}, left by ci-kit pid {pid} that did not finish")
        removed.append(path)
    return removed


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # read-only folders (some tools make them): make them writable, retry
        for root, dirs, _ in os.walk(path):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(root, d), 0o700)
        shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        console.step(f"cleanup: could not remove all of {path}")


def stop_on_signals() -> None:
    """SIGTERM (CI's cancel) and SIGINT (Ctrl-C) stop the children's process groups, then
    unwind as Interrupted so that every `with` block (temporary folders) cleans up, and
    main() exits 143/130 with one line. A second signal while unwinding only stops children
    again: the cleanup that is under way must finish."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: object) -> None:
        first = not cancelled()
        cancel(signum)
        if first and not starting():  # else runner raises once the new child is in hand
            raise Interrupted(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
