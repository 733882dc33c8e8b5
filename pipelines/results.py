"""Test and promotion records attached to release files on the index.

The shape is devpi's toxresult JSON (so devpi-web and `devpi list -t` show it) with
ci-kit's own fields under "ci_kit". The gate reads only what `outcome()` derives, never
devpi-web's rendering.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pipelines import __version__


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> str:
    """Who is acting: the CI's notion of it where there is one, else the OS user."""
    for var in ("GITHUB_ACTOR", "BUILD_USER_ID", "BUILD_USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        who = getpass.getuser()
    except Exception:
        who = "unknown"
    return f"{who}@{socket.gethostname()}"


def ci_link() -> str:
    if os.environ.get("GITHUB_RUN_ID"):
        return f"{os.environ.get('GITHUB_SERVER_URL', '')}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
    return os.environ.get("BUILD_URL", "")


def test_record(*, filename: str, sha256: str, commit: str, python: str, python_full: str, executable: str,
                command: list[str], retcode: int, output: str, counts: dict[str, int], junit: str,
                metrics: dict[str, Any], proof: dict[str, str], duration: float) -> dict[str, Any]:
    passed = retcode == 0 and counts.get("failures", 0) == 0 and counts.get("errors", 0) == 0
    envname = "py" + python.replace(".", "")
    return {
        "reportversion": "1",
        "toxversion": f"ci-kit {__version__}",
        "platform": sys.platform,
        "host": socket.gethostname(),
        "installpkg": {"basename": filename, "sha256": sha256},
        "testenvs": {envname: {
            "test": [{"command": command, "retcode": retcode, "output": output[-20000:]}],
            "python": {"version": python_full, "executable": executable,
                       "version_info": [int(x) for x in python_full.split(".")[:3]] + ["final", 0]},
        }},
        "ci_kit": {
            "kind": "test", "version": __version__, "filename": filename, "sha256": sha256, "commit": commit,
            "python": python, "python_full": python_full, "passed": passed, **counts,
            "junit": junit[:200_000], "metrics": metrics, "proof": proof, "duration_s": round(duration, 3),
            "at": now(), "by": actor(), "ci": ci_link(), "machine": platform.machine(),
        },
    }


def promotion_record(*, filename: str, sha256: str, source: str, target: str, forced: bool, commit: str) -> dict[str, Any]:
    """Attached to each promoted file on the target: who promoted, when, and whether forced."""
    return {
        "reportversion": "1",
        "toxversion": f"ci-kit {__version__}",
        "platform": sys.platform,
        "host": socket.gethostname(),
        "installpkg": {"basename": filename, "sha256": sha256},
        "testenvs": {},
        "ci_kit": {"kind": "promotion", "version": __version__, "filename": filename, "sha256": sha256,
                   "from": source, "to": target, "forced": forced, "commit": commit,
                   "at": now(), "by": actor(), "ci": ci_link()},
    }


@dataclass(frozen=True)
class Outcome:
    """What one record says about one file."""

    kind: str  # "test" or "promotion"
    sha256: str
    python: str
    passed: bool
    at: str
    by: str
    source: str  # "ci-kit" or "devpi test"
    detail: dict[str, Any]


def outcome(record: dict[str, Any]) -> Outcome | None:
    """Read a record written by ci-kit, or by `devpi test` (tox's result JSON)."""
    ck = record.get("ci_kit")
    if isinstance(ck, dict) and ck.get("kind") in ("test", "promotion"):
        return Outcome(ck["kind"], ck.get("sha256", ""), ck.get("python", ""), bool(ck.get("passed")),
                       ck.get("at", ""), ck.get("by", ""), "ci-kit", ck)
    pkg = record.get("installpkg") or {}
    envs = record.get("testenvs") or {}
    if not pkg.get("sha256") or not envs:
        return None
    retcodes, python = [], ""
    for env in envs.values():
        for key in ("setup", "test"):
            retcodes += [c.get("retcode") for c in env.get(key, []) if isinstance(c, dict)]
        info = (env.get("python") or {}).get("version_info") or []
        if len(info) >= 2:
            python = f"{info[0]}.{info[1]}"
    ran_tests = any(env.get("test") for env in envs.values())
    passed = ran_tests and all(str(rc) == "0" for rc in retcodes)
    return Outcome("test", pkg["sha256"], python, passed, "", "", "devpi test", {})
