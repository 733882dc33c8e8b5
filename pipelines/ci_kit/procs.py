"""What the operating system says about processes, ports and process groups (Linux /proc).

Why a module of its own: before ci-kit signals a process or sends a password to a port,
it must know who is on the other end. Pids are reused and ports are shared, so a pid
file or "something answers on 3141" proves nothing; the process's own command line and
the owner of the listening socket do. Everything here is read-only and best effort:
where /proc cannot tell (another OS, no permission) the answer is None, never a guess.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

PROC = Path("/proc")


def available() -> bool:
    """Whether this machine has a /proc ci-kit can read (Linux)."""
    return (PROC / "self" / "stat").exists()


def pid_namespace() -> str:
    """Our pid namespace: pids seen from another one (a container sharing /tmp) mean nothing here."""
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return ""


def _pids() -> list[int]:
    try:
        return [int(e.name) for e in PROC.iterdir() if e.name.isdigit()]
    except OSError:
        return []


def _ps(pid: int) -> list[str] | None:
    """argv from `ps` where there is no /proc (macOS): split on blanks, which is enough to
    recognise devpi-server and its --serverdir unless that path holds a blank."""
    ps = shutil.which("ps")
    if not ps:
        return None
    try:
        out = subprocess.run([ps, "-ww", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split() or None


def cmdline(pid: int) -> list[str] | None:
    """argv of a live process; None for a dead one or a zombie (whose cmdline is empty)."""
    if not available():
        return _ps(pid) if alive(pid) else None
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], pgrp [2], starttime [19])."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie: a zombie holds its pid but runs nothing
    (and here PID 1 may never reap orphans, so kill(pid, 0) alone would say "alive")."""
    if not available():
        try:
            os.kill(pid, 0)
            return True
        except PermissionError:
            return True
        except OSError:
            return False
    st = _stat(pid)
    if not st:
        return False
    if st[0] not in ("Z", "X"):
        return True
    try:  # a zombie main thread whose other threads still run (and hold its sockets)
        return len(os.listdir(PROC / str(pid) / "task")) > 1
    except OSError:
        return False


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot: with the pid, a name for one
    process that a reused pid cannot fake."""
    st = _stat(pid)
    return st[19] if st and len(st) > 19 else ""


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    if not available():  # kill(0) cannot tell zombies: then the caller waits out its grace
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except OSError:
            return []
    found = []
    for pid in _pids():
        st = _stat(pid)
        if st and len(st) > 2 and st[2] == str(pgid) and st[0] not in ("Z", "X"):
            found.append(pid)
    return found


def is_devpi_server(pid: int, server_dir: Path) -> bool:
    """Whether pid is a devpi-server serving server_dir, judged by its own command line."""
    argv = cmdline(pid)
    if not argv or not any(Path(a).name.startswith("devpi-server") for a in argv[:2]):
        return False
    want = str(server_dir.resolve())
    for i, a in enumerate(argv):
        value = argv[i + 1] if a == "--serverdir" and i + 1 < len(argv) else (a.split("=", 1)[1] if a.startswith("--serverdir=") else None)
        if value is not None and os.path.realpath(value) == want:
            return True
    return False


def devpi_servers(server_dir: Path) -> list[int]:
    """Every live devpi-server process serving server_dir (found even without a pid file)."""
    return [pid for pid in _pids() if is_devpi_server(pid, server_dir)]


def _listen_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP port (any address), from /proc/net/tcp and tcp6."""
    inodes = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    return inodes


def port_listeners(port: int, only: list[int] | None = None) -> list[int] | None:
    """Pids holding a listening socket on port; [] when nothing listens; None when /proc
    says something listens but not who (no permission to read its fds). With only, just
    those pids are looked at (cheap: used while waiting for our own server)."""
    if not available():
        return None  # cannot tell: callers fall back to asking the port itself
    inodes = _listen_inodes(port)
    if not inodes:
        return []
    targets = {f"socket:[{i}]" for i in inodes}
    pids = []
    for entry in (PROC / str(p) for p in (only if only is not None else _pids())):
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    pids.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(pids) or None


def describe(pid: int) -> str:
    """`pid 123 (python3 -m http.server 3141)`, for error messages."""
    argv = cmdline(pid) or []
    text = " ".join(argv)
    return f"pid {pid}" + (f" ({text[:120]})" if text else "")


def port_owner(port: int) -> str:
    """Who listens on port, in words: from /proc, else `ss -ltnp` (or lsof), else ""."""
    pids = port_listeners(port)
    if pids == [] and available():
        return ""
    if pids:
        return ", ".join(describe(p) for p in pids)
    ss = shutil.which("ss")
    if ss:
        try:
            out = subprocess.run([ss, "-H", "-ltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        m = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
        if m:
            return f"pid {m.group(2)} ({m.group(1)})"
    lsof = shutil.which("lsof")
    if lsof:
        try:
            out = subprocess.run([lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"], capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out.split():
            return ", ".join(describe(int(p)) for p in out.split() if p.isdigit())
    return ""


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        st = _stat(pid)
        pid = int(st[1]) if st and len(st) > 1 else 0
    return pids


def referencing(path: Path) -> list[int]:
    """Live processes of our user that carry the folder path in their command line or
    environment: the children a killed ci-kit left behind in its temporary folder (each
    got the folder in its arguments, or VIRTUAL_ENV, PYTEST_ADDOPTS, ... pointing into it).
    Never this process or its ancestors. As root, any user's: the product's tests ran as a
    throwaway uid (sandbox.py), and the folder's random name is this run's alone."""
    key, mine, skip = str(path).encode(), os.getuid(), _ancestors()
    found = []
    for entry in (PROC / str(p) for p in _pids()):
        if int(entry.name) in skip or not alive(int(entry.name)):
            continue
        try:
            if mine != 0 and entry.stat().st_uid != mine:
                continue
            hit = key in (entry / "cmdline").read_bytes() or key in (entry / "environ").read_bytes()
        except OSError:
            continue
        if hit:
            found.append(int(entry.name))
    return found
