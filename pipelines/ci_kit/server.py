"""`ci-kit server start|stop|status`: the embedded default index.

A devpi-server on 127.0.0.1 with a user and its unstable (volatile), testing and stable
(non-volatile) indexes, created idempotently. No root/pypi mirror is created, so it works
with no internet; dependencies of products come from dependency-index-url instead.

Lifecycle rules, because the server directory outlives processes and ports are shared:
a pid in the pid file counts only if /proc says it is devpi-server with this --serverdir
(a stale one is removed with a note, nothing is signalled); a server counts as ours only
if the process listening on the port is that pid AND its +status names this directory's
uuid (from .nodeinfo) — before that no password is sent; a database left with a hot
journal by a crash is recovered the way SQLite does before devpi opens it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as _secrets
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_kit import console, procs, runner, topology
from ci_kit.config import Settings
from ci_kit.errors import AuthError, IndexUnreachable, ServerFailed, UsageError
from ci_kit.index import Index

PIDFILE = "ci-kit-server.pid"
DATABASE = ".sqlite"
JOURNALS = ("-journal", "-wal")


@dataclass
class ServerState:
    url: str
    server_dir: str
    pid: int | None
    running: bool
    user: str
    indexes: list[str]
    password_file: str = ""
    tokens: str = ""  # devpi-tokens' version when the server has the plugin (per-stage tokens: ci-kit token)
    uuid: str = ""
    port_owner: str = ""  # who holds the port when it is not our server
    notes: list[str] = field(default_factory=list)
    topology: dict[str, Any] = field(default_factory=dict)  # role and serials (topology.serials)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise UsageError(f"{name} is not installed", "install ci-kit with its server extra, e.g. scripts/bootstrap VENV server (brings devpi-server)")
    return found


def _dir(settings: Settings) -> Path:
    return Path(settings.server.server_dir).expanduser().resolve()


def _url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.server.server_port}"


def _uuid(server_dir: Path) -> str:
    """The directory's identity: the uuid devpi-init wrote to .nodeinfo."""
    try:
        return str(json.loads((server_dir / ".nodeinfo").read_text()).get("uuid", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _pid(server_dir: Path, notes: list[str] | None = None, fix: bool = False) -> int | None:
    """The pid of our devpi-server: the pid file's, if /proc says that process is
    devpi-server with this --serverdir; else one found in /proc by its command line.
    A stale pid file is reported in notes and, with fix, removed (never signalled)."""
    notes = notes if notes is not None else []
    path = server_dir / PIDFILE
    try:
        pid: int | None = int(path.read_text().strip())
    except FileNotFoundError:
        pid = None
    except (OSError, ValueError):
        pid = -1
    if pid is not None and not (pid > 0 and procs.is_devpi_server(pid, server_dir)):
        what = "unreadable" if pid < 0 else (f"names {procs.describe(pid)}, not devpi-server for this directory"
                                             if procs.alive(pid) else f"names pid {pid}, which is not running")
        notes.append(f"stale pid file {path} ({what})" + ("; removed it" if fix else ""))
        if fix:
            path.unlink(missing_ok=True)
        pid = None
    if pid is None:
        found = procs.devpi_servers(server_dir)
        if found:
            pid = found[0]
            notes.append(f"devpi-server pid {pid} serves this directory without a pid file" + ("; recorded it" if fix else ""))
            if fix:
                path.write_text(f"{pid}\n")
    return pid


def _status_json(url: str) -> dict[str, Any] | None:
    """devpi's +status result, or None when what answers is not a devpi-server (no
    credentials are sent: this is how ci-kit finds out who it is talking to)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(f"{url}/+status", headers={"Accept": "application/json"}), timeout=3) as resp:
            result = json.loads(resp.read(1 << 20)).get("result")
    except (OSError, ValueError, AttributeError):
        return None
    return result if isinstance(result, dict) else None


def _not_ours(url: str, port: int, server_dir: Path, pid: int) -> str:
    """Why what answers on the port is not our devpi-server (pid, serving server_dir),
    or "" when it is: the listening process must be pid and +status must name this
    directory's uuid and path."""
    listeners = procs.port_listeners(port, only=[pid])
    if listeners == []:
        return f"nothing listens on port {port}"
    if listeners is None:  # something listens, but not pid: who, then?
        listeners = procs.port_listeners(port)
    if listeners and pid not in listeners:
        return f"port {port} is held by {', '.join(procs.describe(p) for p in listeners)}"
    status = _status_json(url)
    if status is None:
        return f"what answers on port {port} is not a devpi-server"
    want = _uuid(server_dir)
    if not want or status.get("uuid") != want or os.path.realpath(str(status.get("serverdir", ""))) != str(server_dir):
        return f"the devpi-server on port {port} serves {status.get('serverdir')} (uuid {status.get('uuid')}), not {server_dir} (uuid {want or 'unknown'})"
    return ""


def _port_busy(port: int) -> str | None:
    """None when the port is free; else who holds it, in words ("" when nobody can tell)."""
    listeners = procs.port_listeners(port)
    if listeners == [] or (listeners is None and not procs.available()):  # no /proc: ask the port
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return None
    return procs.port_owner(port)


def _journals(server_dir: Path) -> list[Path]:
    """Journals a crash left next to the database (an empty one is not hot: nothing to undo)."""
    return [p for p in (server_dir / (DATABASE + j) for j in JOURNALS) if p.exists() and p.stat().st_size > 0]


def recover_database(server_dir: Path) -> str:
    """Roll back what a crash left in the middle of a write, the way SQLite itself does:
    a read-write connection that reads the database rolls back a hot journal (or replays
    the WAL). devpi-server opens the database read-only first and cannot do this, so
    without it every start fails the same way. Returns a note, or "" if nothing was left."""
    import sqlite3

    db = server_dir / DATABASE
    left = _journals(server_dir)
    if not db.exists() or not left:
        return ""
    names = ", ".join(p.name for p in left)
    how = (f"stop every process using {server_dir}, then, as its owner: python3 -c \"import sqlite3; "
           f"print(sqlite3.connect('{db}').execute('pragma quick_check').fetchall())\" (this rolls the journal back); "
           "if it does not print [('ok',)], restore the directory from a backup")
    try:
        con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=10)
        try:
            check = con.execute("PRAGMA quick_check").fetchall()  # reading rolls a hot journal back
            if any(p.name.endswith("-wal") for p in left):
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ServerFailed(f"the database {db} was left mid-write by a crash ({names}) and SQLite cannot roll it back: {exc}", how) from None
    if check != [("ok",)]:
        raise ServerFailed(f"the database {db} is damaged after a crash: {check[0][0] if check else 'no answer'}", how)
    left = _journals(server_dir)
    return f"recovered the database after a crash (rolled back {names}; integrity ok)" + (
        f"; {', '.join(p.name for p in left)} still present" if left else "")


def start(settings: Settings, wait: float = 90.0, *, replica_of: str = "", primary: bool = False) -> ServerState:
    server_dir, url, port = _dir(settings), _url(settings), settings.server.server_port
    role = topology.plan(settings, server_dir, replica_of, primary)  # a replica's users and indexes are its primary's
    try:
        server_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServerFailed(f"cannot make the server directory {server_dir}: {exc.strerror}",
                           "set server-dir (CI_KIT_SERVER_DIR) to a directory you can write") from None
    notes: list[str] = []
    pid = _pid(server_dir, notes, fix=True)
    for n in notes:
        console.step(f"server: {n}")
    if pid is not None:
        problem = _not_ours(url, port, server_dir, pid)
        if problem:
            raise ServerFailed(f"devpi-server pid {pid} serves {server_dir}, but {url} is not it: {problem}",
                               f"stop it (ci-kit server stop) or use the port it listens on: {' '.join(procs.cmdline(pid) or [])}")
        console.step(f"server: already running on {url} (pid {pid}, uuid {_uuid(server_dir)})")
    else:
        owner = _port_busy(port)
        if owner is not None:
            raise ServerFailed(f"port {port} is already in use" + (f" by {owner}" if owner else " by another process"),
                               "stop that process, or pick another port with --server-port or CI_KIT_SERVER_PORT")
        pid = _launch(settings, server_dir, url, wait, role)
    if role.replica:  # ready when it holds what its primary held at its start
        topology.catch_up(url, role, wait)
    password_file = "" if role.replica else _ensure_user(settings, url, server_dir)
    return status(settings, password_file=password_file)


def _launch(settings: Settings, server_dir: Path, url: str, wait: float, role: topology.Role) -> int:
    """Initialise if needed, recover the database, start devpi-server, and return its pid
    once it is proven to be the one answering; root gets a password only then."""
    env, secret = runner.child_env(topology.storage_env(settings)), topology.secret_file(settings, server_dir, role)
    if not (server_dir / ".serverversion").exists():
        console.step(f"server: initialising {server_dir}" + (f" ({role.name})" if role.name != "standalone" else ""))
        init = runner.run([_bin("devpi-init"), "--serverdir", str(server_dir), "--no-root-pypi", *topology.init_args(role)], env=env)
        if init.returncode != 0:
            console.detail(init.stdout)
            raise ServerFailed(f"devpi-init failed in {server_dir}", "see its output above")
    note = recover_database(server_dir)
    if note:
        console.step(f"server: {note}")
    log = server_dir / "server.log"
    proc = runner.spawn([_bin("devpi-server"), "--serverdir", str(server_dir), "--host", "127.0.0.1",
                         "--port", str(settings.server.server_port), "--secretfile", str(secret), *topology.server_args(role)],
                        log=log, env=env)
    (server_dir / PIDFILE).write_text(f"{proc.pid}\n")
    try:
        deadline = time.monotonic() + wait
        while (problem := _not_ours(url, settings.server.server_port, server_dir, proc.pid)):
            if proc.poll() is not None:
                owner = _port_busy(settings.server.server_port)
                raise ServerFailed(f"devpi-server exited ({proc.returncode}) during start-up: " + (
                    f"port {settings.server.server_port} was taken by {owner or 'another process'}" if owner is not None else _log_tail(log)),
                    f"see {log}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"devpi-server did not become ready on {url} within {wait:.0f}s ({problem})", f"see {log}")
            time.sleep(0.2)
    except BaseException:
        if proc.poll() is None:
            runner.stop_group(proc.pid)
        proc.wait()
        (server_dir / PIDFILE).unlink(missing_ok=True)
        raise
    console.step(f"server: devpi-server pid {proc.pid} answers on {url} for {server_dir} (uuid {_uuid(server_dir)}, {role.name})")
    if not role.replica:  # a replica's root is its primary's
        _secure_root(url, server_dir)
    return proc.pid


def _log_tail(log: Path) -> str:
    try:
        return runner.telling_line(log.read_text(errors="replace"), limit=300, empty="no log output")
    except OSError:
        return "no log"


def _secure_root(url: str, server_dir: Path) -> None:
    """devpi-init leaves root with an empty password; give it a random one kept in a 0600 file."""
    root = Index(url, "root")
    try:
        root.login("")
    except AuthError:
        return
    password = _secrets.token_urlsafe(24)
    path = server_dir / "root.password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    root.request("PATCH", "root", json={"password": password})


def _ensure_user(settings: Settings, url: str, server_dir: Path) -> str:
    """Create the user and its three indexes if missing. Without CI_KIT_PASSWORD or a
    password file, a random password is made and kept in a 0600 file next to the data."""
    password = settings.index.password
    from ci_kit.tokens import is_token

    if is_token(password):
        raise UsageError("CI_KIT_PASSWORD (or the password file) holds a devpi token; making the user and its indexes needs the password",
                         "unset CI_KIT_PASSWORD for `ci-kit server start`, or set it to the user's password")
    password_file = ""
    if not password:
        path = server_dir / f"{settings.index.user}.password"
        if not path.exists():
            path.write_text(_secrets.token_urlsafe(24) + "\n")
            path.chmod(0o600)
        password = path.read_text().strip()
        password_file = str(path)
    admin = Index(url, settings.index.user)
    created = admin.create_user(settings.index.user, password)
    try:
        admin.login(password)
    except AuthError:
        kept = server_dir / f"{settings.index.user}.password"
        raise AuthError(f"devpi user {settings.index.user!r} already exists on {url} with another password",
                        (f"ci-kit made its password earlier: export CI_KIT_PASSWORD_FILE={kept} (and unset CI_KIT_PASSWORD)"
                         if kept.exists() and not password_file else
                         f"use that user's password, or reset it: devpi-passwd --serverdir {server_dir} {settings.index.user}")) from None
    for name, volatile in ((settings.index.unstable_index, True), (settings.index.testing_index, False), (settings.index.stable_index, False)):
        if name.split("/", 1)[0] != settings.index.user:
            continue
        if admin.create_index(name, volatile=volatile):
            console.step(f"server: created index {name} ({'volatile' if volatile else 'non-volatile'})")
    if created:
        console.step(f"server: created user {settings.index.user}")
    return password_file


def stop(settings: Settings) -> ServerState:
    server_dir = _dir(settings)
    notes: list[str] = []
    pid = _pid(server_dir, notes, fix=True)
    for n in notes:
        console.step(f"server: {n}")
    if pid is None:
        console.step("server: not running")
    else:
        with contextlib.suppress(ProcessLookupError):  # it may end on its own meanwhile
            os.kill(pid, signal.SIGTERM)  # _pid just proved it is devpi-server for this directory
            deadline = time.monotonic() + 10
            while procs.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if procs.alive(pid) and procs.is_devpi_server(pid, server_dir):
                os.kill(pid, signal.SIGKILL)
        (server_dir / PIDFILE).unlink(missing_ok=True)
        console.step(f"server: stopped (pid {pid})")
    return status(settings)


def status(settings: Settings, password_file: str = "") -> ServerState:
    """What is true now, changing nothing: our pid (checked against /proc), whether the
    server on the port is provably ours, who holds the port if not, what a crash left."""
    server_dir, url = _dir(settings), _url(settings)
    notes: list[str] = []
    pid = _pid(server_dir, notes)
    owner = problem = ""
    if pid is not None:
        problem = _not_ours(url, settings.server.server_port, server_dir, pid)
        if problem:
            notes.append(problem)
    else:
        busy = _port_busy(settings.server.server_port)
        if busy is not None:
            owner = busy or "another process"
            notes.append(f"port {settings.server.server_port} is in use by {owner}")
        left = _journals(server_dir)
        if left:
            notes.append(f"a crash left {', '.join(p.name for p in left)}: the next start recovers it")
    running = pid is not None and not problem
    indexes: list[str] = []
    if running:
        try:
            data = topology.reader(url).request("GET", settings.index.user, ok=(200, 404)).json().get("result", {})
            indexes = sorted(f"{settings.index.user}/{n}" for n in data.get("indexes", {}))
        except (IndexUnreachable, ValueError):
            pass
    tokens = ""
    if running:
        from ci_kit.tokens import plugin_version

        tokens = plugin_version(Index(url)) or ""
    if not password_file and (server_dir / f"{settings.index.user}.password").exists():
        password_file = str(server_dir / f"{settings.index.user}.password")
    return ServerState(url, str(server_dir), pid, running, settings.index.user, indexes, password_file, tokens,
                       _uuid(server_dir), owner, notes, topology.serials(_status_json(url)) if running else {})


def describe(state: ServerState) -> str:
    lines = [f"devpi-server {'running' if state.running else 'not running'} at {state.url}",
             f"  data: {state.server_dir}" + (f" (pid {state.pid})" if state.pid else "")
             + (f" uuid {state.uuid}" if state.uuid else "")]
    lines += [f"  note: {n}" for n in state.notes]
    lines += topology.describe(state.topology)
    if state.indexes:
        lines.append(f"  indexes of {state.user}: {', '.join(state.indexes)}")
    if state.password_file:
        lines.append(f"  password of {state.user}: in {state.password_file} (export CI_KIT_PASSWORD_FILE={state.password_file})")
    if state.running:
        lines.append(f"  tokens: devpi-tokens {state.tokens} (per-stage tokens: ci-kit token STAGE)" if state.tokens
                     else "  tokens: not available (devpi-tokens is not installed next to devpi-server): passwords only")
        lines.append(f"  use it: export CI_KIT_INDEX_URL={state.url} CI_KIT_USER={state.user}")
    return "\n".join(lines)
