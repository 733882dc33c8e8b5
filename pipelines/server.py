"""`ci-kit server start|stop|status`: the embedded default index.

A devpi-server on 127.0.0.1 with a user and its unstable (volatile), testing and stable
(non-volatile) indexes, created idempotently. No root/pypi mirror is created, so it works
with no internet; dependencies of products come from dependency-index-url instead.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import console, runner
from pipelines.config import Settings
from pipelines.errors import AuthError, CiKitError, IndexUnreachable, ServerFailed, UsageError
from pipelines.index import Index

PIDFILE = "ci-kit-server.pid"


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

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise UsageError(f"{name} is not installed", "install ci-kit with its server extra, e.g. scripts/bootstrap VENV server (brings devpi-server)")
    return found


def _pid(server_dir: Path) -> int | None:
    try:
        pid = int((server_dir / PIDFILE).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _answers(url: str) -> bool:
    try:
        Index(url, timeout=2).request("GET", "+api")
        return True
    except CiKitError:
        return False


def _url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.server_port}"


def start(settings: Settings, wait: float = 90.0) -> ServerState:
    server_dir = Path(settings.server_dir).expanduser().resolve()
    url = _url(settings)
    try:
        server_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServerFailed(f"cannot make the server directory {server_dir}: {exc.strerror}",
                           "set server-dir (CI_KIT_SERVER_DIR) to a directory you can write") from None
    pid = _pid(server_dir)
    if pid is None and _answers(url):
        raise UsageError(f"another server already listens on {url}", "pick another port with --server-port or CI_KIT_SERVER_PORT")
    if pid is None:
        if not (server_dir / ".serverversion").exists():
            console.step(f"server: initialising {server_dir}")
            proc = runner.run([_bin("devpi-init"), "--serverdir", str(server_dir), "--no-root-pypi"])
            if proc.returncode != 0:
                console.detail(proc.stdout)
                raise ServerFailed(f"devpi-init failed in {server_dir}", "see its output above")
        secret = server_dir / "secret"
        if not secret.exists():
            secret.write_bytes(_secrets.token_urlsafe(48).encode())
            secret.chmod(0o600)
        proc = runner.spawn([_bin("devpi-server"), "--serverdir", str(server_dir), "--host", "127.0.0.1",
                             "--port", str(settings.server_port), "--secretfile", str(secret)],
                            log=server_dir / "server.log")
        (server_dir / PIDFILE).write_text(str(proc.pid))
        deadline = time.monotonic() + wait
        while not _answers(url):
            if proc.poll() is not None:
                raise ServerFailed(f"devpi-server exited ({proc.returncode}) during start-up",
                                   f"see {server_dir / 'server.log'}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"devpi-server did not answer on {url} within {wait:.0f}s", f"see {server_dir / 'server.log'}")
            time.sleep(0.2)
        console.step(f"server: devpi-server answers on {url}")
        _secure_root(url, server_dir)
    else:
        console.step(f"server: already running on {url} (pid {pid})")
    password_file = _ensure_user(settings, url, server_dir)
    return status(settings, password_file=password_file)


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
    password = settings.password
    from pipelines.tokens import is_token

    if is_token(password):
        raise UsageError("CI_KIT_PASSWORD (or the password file) holds a devpi token; making the user and its indexes needs the password",
                         "unset CI_KIT_PASSWORD for `ci-kit server start`, or set it to the user's password")
    password_file = ""
    if not password:
        path = server_dir / f"{settings.user}.password"
        if not path.exists():
            path.write_text(_secrets.token_urlsafe(24) + "\n")
            path.chmod(0o600)
        password = path.read_text().strip()
        password_file = str(path)
    admin = Index(url, settings.user)
    created = admin.create_user(settings.user, password)
    admin.login(password)
    for name, volatile in ((settings.unstable_index, True), (settings.testing_index, False), (settings.stable_index, False)):
        if name.split("/", 1)[0] != settings.user:
            continue
        if admin.create_index(name, volatile=volatile):
            console.step(f"server: created index {name} ({'volatile' if volatile else 'non-volatile'})")
    if created:
        console.step(f"server: created user {settings.user}")
    return password_file


def stop(settings: Settings) -> ServerState:
    server_dir = Path(settings.server_dir).expanduser().resolve()
    pid = _pid(server_dir)
    if pid is None:
        console.step("server: not running")
    else:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if _pid(server_dir) is None:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        (server_dir / PIDFILE).unlink(missing_ok=True)
        console.step(f"server: stopped (pid {pid})")
    return status(settings)


def status(settings: Settings, password_file: str = "") -> ServerState:
    server_dir = Path(settings.server_dir).expanduser().resolve()
    url = _url(settings)
    pid = _pid(server_dir)
    running = _answers(url)
    indexes: list[str] = []
    if running:
        try:
            data = Index(url).request("GET", settings.user, ok=(200, 404)).json().get("result", {})
            indexes = sorted(f"{settings.user}/{n}" for n in data.get("indexes", {}))
        except (IndexUnreachable, ValueError):
            pass
    tokens = ""
    if running:
        from pipelines.tokens import plugin_version

        tokens = plugin_version(Index(url)) or ""
    if not password_file and (server_dir / f"{settings.user}.password").exists():
        password_file = str(server_dir / f"{settings.user}.password")
    return ServerState(url, str(server_dir), pid, running, settings.user, indexes, password_file, tokens)


def describe(state: ServerState) -> str:
    lines = [f"devpi-server {'running' if state.running else 'not running'} at {state.url}",
             f"  data: {state.server_dir}" + (f" (pid {state.pid})" if state.pid else "")]
    if state.indexes:
        lines.append(f"  indexes of {state.user}: {', '.join(state.indexes)}")
    if state.password_file:
        lines.append(f"  password of {state.user}: in {state.password_file} (export CI_KIT_PASSWORD_FILE={state.password_file})")
    if state.running:
        lines.append(f"  tokens: devpi-tokens {state.tokens} (per-stage tokens: ci-kit token STAGE)" if state.tokens
                     else "  tokens: not available (devpi-tokens is not installed next to devpi-server): passwords only")
        lines.append(f"  use it: export CI_KIT_INDEX_URL={state.url} CI_KIT_USER={state.user}")
    return "\n".join(lines)


def dumps(state: ServerState) -> str:
    return json.dumps(state.to_json(), indent=2)
