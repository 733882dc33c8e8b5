"""The records ci-kit attaches to release files: build (job 1), test (each run),
promotion (on the target) and claim (on the source, before a copy: claims.py).

The shape is devpi's toxresult JSON (so devpi-web and `devpi list -t` show it) with
ci-kit's own fields under "ci_kit". What counts when they are read back is decided in
evidence.py (who attached them, and a strict schema), never from devpi-web's rendering.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from typing import Any

from ci_kit import __version__
from ci_kit.contract import Counts
from ci_kit.evidence import SCHEMA


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> str:
    """Who is acting: the CI's notion of it where there is one, else the OS user."""
    for var in ("GITHUB_ACTOR", "BUILD_USER_ID", "BUILD_USER"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        who = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (a container's bare uid)
        who = "unknown"
    return f"{who}@{socket.gethostname()}"


def ci_link() -> str:
    if os.environ.get("GITHUB_RUN_ID"):
        return f"{os.environ.get('GITHUB_SERVER_URL', '')}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
    return os.environ.get("BUILD_URL", "")


def _shell(filename: str, sha256: str, testenvs: dict[str, Any]) -> dict[str, Any]:
    """devpi's toxresult frame, so devpi-web and `devpi list -t` show the record."""
    return {"reportversion": "1", "toxversion": f"ci-kit {__version__}", "platform": sys.platform,
            "host": socket.gethostname(), "installpkg": {"basename": filename, "sha256": sha256}, "testenvs": testenvs}


def test_record(*, filename: str, sha256: str, commit: str, python: str, python_full: str, executable: str,
                command: list[str], retcode: int, output: str, counts: Counts, counted: bool, junit: str,
                metrics: dict[str, Any], proof: dict[str, str], duration: float,
                evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's record. `counted`: the counts come from the JUnit XML ci-kit asked for; a
    pass needs tests > 0 unless JUnit was waived (require-junit = false), which is said here."""
    passed = (retcode == 0 and counts.get("failures", 0) == 0 and counts.get("errors", 0) == 0
              and (counts.get("tests", 0) > 0 or not counted))
    envname = "py" + python.replace(".", "")
    testenvs = {envname: {
        "test": [{"command": command, "retcode": retcode, "output": output[-20000:]}],
        "python": {"version": python_full, "executable": executable,
                   "version_info": [int(x) for x in python_full.split(".")[:3]] + ["final", 0]},
    }}
    return {**_shell(filename, sha256, testenvs), "ci_kit": {
        "schema": SCHEMA, "kind": "test", "version": __version__, "filename": filename, "sha256": sha256, "commit": commit,
        "python": python, "python_full": python_full, "passed": passed,
        "tests": 0, "failures": 0, "errors": 0, "skipped": 0, **counts, "counted": counted,
        "junit": junit[:200_000], "metrics": metrics, "proof": proof, "duration_s": round(duration, 3),
        "at": now(), "by": actor(), "ci": ci_link(), "machine": platform.machine(),
        **({"evaluation": evaluation} if evaluation is not None else {}),  # quality/schema.py
    }}


def build_record(*, filename: str, sha256: str, commit: str, files: list[dict[str, str]]) -> dict[str, Any]:
    """Job 1's record on each uploaded file: the commit it was built from and the whole
    file set, so job 2 can refuse another commit or an incomplete release."""
    return {**_shell(filename, sha256, {}), "ci_kit": {
        "schema": SCHEMA, "kind": "build", "version": __version__, "filename": filename, "sha256": sha256,
        "commit": commit, "files": files, "at": now(), "by": actor(), "ci": ci_link()}}


def promotion_record(*, filename: str, sha256: str, source: str, target: str, forced: bool, commit: str,
                     at: str = "", quality: dict[str, Any] | None = None) -> dict[str, Any]:
    """Attached to each promoted file on the target: who promoted, when (one time for all
    files of one promotion), and whether forced."""
    return {**_shell(filename, sha256, {}), "ci_kit": {
        "schema": SCHEMA, "kind": "promotion", "version": __version__, "filename": filename, "sha256": sha256,
        "from": source, "to": target, "forced": forced, "commit": commit, "at": at or now(), "by": actor(), "ci": ci_link(),
        **({"quality": quality} if quality is not None else {})}}  # the quality gate's verdict (quality/hook.py)


def claim_record(*, filename: str, sha256: str, target: str, run: str, op: str) -> dict[str, Any]:
    """A run's claim to promote the file's release to target (op "claim"), or its giving
    up that claim (op "release"); who and when count from the index's log (claims.py)."""
    return {**_shell(filename, sha256, {}), "ci_kit": {
        "schema": SCHEMA, "kind": "claim", "version": __version__, "filename": filename, "sha256": sha256,
        "commit": "", "to": target, "run": run, "op": op, "at": now(), "by": actor(), "ci": ci_link()}}
