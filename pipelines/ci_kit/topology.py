"""The embedded server's place in devpi's scale-out (docs/scale.md): standalone (the
default, SQLite in server-dir), a primary (replicas may follow it; its storage may be
PostgreSQL through the devpi-postgresql plugin: server-storage), or a replica of a
primary (`ci-kit server start --replica-of URL`). server.py runs the server; this module
decides its role, storage, secret and arguments, and reads its serials back.

Why here and not in server.py: the lifecycle rules there are the same for every role;
what differs between roles is small and is kept together.
"""

from __future__ import annotations

import json
import secrets as _secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_kit import console
from ci_kit.config import Settings
from ci_kit.errors import UsageError
from ci_kit.keys import _url

STORAGE_ENV = "DEVPISERVER_STORAGE"  # devpi-server reads every option from DEVPISERVER_<NAME> too


@dataclass(frozen=True)
class Role:
    name: str  # "standalone", "primary" or "replica"
    primary_url: str = ""  # the primary a replica follows

    @property
    def replica(self) -> bool:
        return self.name == "replica"


def _nodeinfo(server_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((server_dir / ".nodeinfo").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def plan(settings: Settings, server_dir: Path, replica_of: str = "", primary: bool = False) -> Role:
    """The role to start server_dir in: asked for (--replica-of, --primary, or a
    server-storage, which only a primary needs), or the one the directory already has
    (devpi keeps it in .nodeinfo; a replica also keeps its primary's URL there)."""
    had = _nodeinfo(server_dir)
    old, old_primary = str(had.get("role", "")), str(had.get("masterurl", "") or had.get("primary-url", ""))
    if replica_of:
        problem = _url(replica_of)
        if problem:
            raise UsageError(f"--replica-of {replica_of!r}: must be {problem}", "give the primary's root URL, e.g. http://primary:3141")
        if primary:
            raise UsageError("--primary and --replica-of exclude each other", "start a primary or a replica, not both")
        if old and old != "replica":
            raise UsageError(f"{server_dir} already holds a {old} server, not a replica",
                             "give the replica a server-dir of its own (CI_KIT_SERVER_DIR)")
        return Role("replica", replica_of.rstrip("/"))
    if old == "replica":
        if primary or settings.server.server_storage:
            raise UsageError(f"{server_dir} holds a replica of {old_primary or 'a primary'}",
                             "start it with `ci-kit server start` alone, or use another server-dir for a primary")
        return Role("replica", old_primary.rstrip("/"))
    return Role("primary" if (primary or settings.server.server_storage or old == "primary") else "standalone")


def storage_env(settings: Settings) -> dict[str, str]:
    """devpi's --storage for devpi-init and devpi-server, as environment: the database
    password (CI_KIT_SERVER_STORAGE_PASSWORD) is added to the spec there, never to argv."""
    spec = settings.server.server_storage
    if not spec:
        return {}
    password = settings.server.storage_password
    if password:
        if "," in password:
            raise UsageError("CI_KIT_SERVER_STORAGE_PASSWORD contains a comma, which devpi's storage spec cannot carry",
                             "give the database user a password without commas")
        console.add_secret(password)
        spec += ("," if ":" in spec else ":") + f"password={password}"
    return {STORAGE_ENV: spec}


def secret_file(settings: Settings, server_dir: Path, role: Role) -> Path:
    """devpi's --secretfile: server-secret-file, else <server-dir>/secret, made for a
    primary or standalone server on first start. A replica must share its primary's."""
    path = Path(settings.server.server_secret_file).expanduser().resolve() if settings.server.server_secret_file else server_dir / "secret"
    if path.is_file():
        return path
    if role.replica or settings.server.server_secret_file:
        raise UsageError(f"no secret file at {path}" + (" (a replica needs its primary's)" if role.replica else ""),
                         "copy the primary's secret file (its server-dir/secret) here, mode 0600, and set server-secret-file to it")
    path.write_bytes(_secrets.token_urlsafe(48).encode())
    path.chmod(0o600)
    return path


def init_args(role: Role) -> list[str]:
    return ["--primary-url", role.primary_url] if role.replica else (["--role", "primary"] if role.name == "primary" else [])


def server_args(role: Role) -> list[str]:
    return init_args(role)


def catch_up(url: str, role: Role, wait: float) -> None:
    """Wait until a replica just started holds the serial its primary has now (the wait
    of ci_kit.serials, on the replica's first read); one that is still behind is reported,
    not stopped: it goes on catching up, and jobs wait for what they need."""
    from ci_kit.errors import IndexUnreachable
    from ci_kit.index import Index

    index = Index(url, primary_url=role.primary_url, replica_wait=wait)
    try:
        index.request("GET", "+api")
    except IndexUnreachable as exc:
        console.step(f"server: replica not caught up yet: {exc.message}")
        return
    console.step(f"server: replica caught up with its primary {role.primary_url}")


def reader(url: str) -> Any:
    """An Index for `server status`, which shows what this server holds now: on a replica
    it waits for no serial (ci_kit.serials), so a lagging replica is shown, not waited for."""
    from ci_kit.index import Index

    index = Index(url)
    index.serials.synced = True
    return index


def serials(status: dict[str, Any] | None) -> dict[str, Any]:
    """Role and serials from devpi's +status: this server's serial, the primary's (as a
    replica last heard it), and the serial each replica polling a primary has reached."""
    if not status:
        return {}
    role = str(status.get("role", "")).lower().replace("master", "primary")
    out: dict[str, Any] = {"role": role, "serial": status.get("serial")}
    if role == "replica":
        out.update(primary_url=status.get("primary-url", ""), primary_serial=status.get("primary-serial"))
    polling = status.get("polling_replicas") or {}
    if isinstance(polling, dict) and polling:
        out["replicas"] = {str(info.get("outside-url") or uuid): info.get("serial")
                           for uuid, info in polling.items() if isinstance(info, dict)}
    return out


def describe(info: dict[str, Any]) -> list[str]:
    """`ci-kit server status` lines for the role and serials."""
    if not info:
        return []
    if info.get("role") == "replica":
        behind = ""
        if isinstance(info.get("serial"), int) and isinstance(info.get("primary_serial"), int):
            behind = f", {max(0, info['primary_serial'] - info['serial'])} behind"
        return [(f"  role: replica of {info.get('primary_url')} (serial {info.get('serial')}; "
                 f"primary at {info.get('primary_serial')}{behind})")]
    lines = [f"  role: {info.get('role')} (serial {info.get('serial')})"]
    for who, serial in sorted((info.get("replicas") or {}).items()):
        lines.append(f"  replica: {who} at serial {serial}")
    return lines
