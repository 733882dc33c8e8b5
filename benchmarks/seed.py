"""Seed projects with many releases quickly: tiny generated wheels, each with a passing
test record in ci-kit's shape attached (so that `ci-kit promote`'s gate passes for any of
them), written as one devpi export dump and imported with `devpi-import` before the
benchmark's server starts (see below for why not over HTTP). The "many" row's project
and the quality rows' (benchmarks/quality.py) go into the same dump."""

from __future__ import annotations

import base64
import hashlib
import io
import platform
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import PASSWORD


def tiny_wheel(name: str, version: str) -> tuple[str, bytes]:
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n".encode(),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                             "Summary: a release seeded by the ci-kit benchmarks\n\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: ci-kit-benchmarks\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zi = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(zi, data)
    return f"{dist}-{version}-py3-none-any.whl", buf.getvalue()


def versions(n: int) -> list[str]:
    # dev versions: ci-kit routes them to the testing index, as it does the example's
    return [f"1.0.0.dev{i}" for i in range(1, n + 1)]


# -- seeding by import: one write transaction for the whole project ------------------------
#
# Uploading 1,000 releases over HTTP with 8 threads got slower and slower here (26 uploads/s
# at first, 1.5/s after 600, 0.6-1 s per commit in devpi-server's log) and then failed with
# "database is locked" (HTTP 500). `devpi-import` writes a whole project in one transaction,
# so the seeded server is made by importing a generated export dump before it starts. The dump has the same tiny wheels and, attached to each, the same
# passing test record in ci-kit's shape.

@dataclass
class Project:
    """One project to seed: `releases` is (index, version, records) with index one of
    unstable, testing, stable of `user`; `records(filename, sha256)` are the records
    attached to the release's one tiny wheel there (each logged as uploaded by `user`)."""

    user: str
    name: str
    releases: list[tuple[str, str, Callable[[str, str], list[dict[str, Any]]]]]


def passing(commit: str = "0" * 40, evaluation: dict[str, Any] | None = None) -> Callable[[str, str], list[dict[str, Any]]]:
    """A build record and a passing test record in ci-kit's shape (so that promote's gate passes)."""
    from ci_kit import results

    py = f"{sys.version_info[0]}.{sys.version_info[1]}"

    def records(fn: str, sha: str) -> list[dict[str, Any]]:
        build = results.build_record(filename=fn, sha256=sha, commit=commit, files=[{"filename": fn, "sha256": sha}])
        test = results.test_record(
            filename=fn, sha256=sha, commit=commit, python=py, python_full=platform.python_version(),
            executable=sys.executable, command=["pytest"], retcode=0, output="1 passed",
            counts={"tests": 1, "failures": 0, "errors": 0, "skipped": 0}, counted=True, junit="",
            metrics=evaluation["metrics"] if evaluation else {}, proof={"method": "seeded by the benchmarks"}, duration=0.01,
            evaluation=evaluation)
        return [build, test]

    return records


def many(user: str, name: str, n: int) -> Project:
    """The "many" row's project: n dev releases on unstable, each with passing records."""
    return Project(user, name, [("unstable", v, passing()) for v in versions(n)])


def write_dump(dest: Path, projects: list[Project]) -> dict[str, Any]:
    import json
    from datetime import datetime, timezone

    from devpi_server import __version__ as server_version
    from devpi_server.auth import hash_password

    t0 = time.perf_counter()
    stamp = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")

    def ixconfig(user: str, volatile: bool) -> dict[str, Any]:
        return {"type": "stage", "volatile": volatile, "bases": [], "acl_upload": [user],
                "acl_toxresult_upload": [user], "mirror_whitelist": []}

    users: dict[str, Any] = {}
    indexes: dict[str, Any] = {}
    counts = {"releases": 0, "files": 0, "records": 0}
    for proj in projects:
        user, name = proj.user, proj.name
        users[user] = {"username": user, "pwhash": hash_password(PASSWORD), "email": "", "created": "2020-01-01T00:00:00Z"}
        for ix in ("unstable", "testing", "stable"):
            # volatile, unlike ci-kit's own testing/stable, only so that the benchmark can delete them afterwards
            indexes.setdefault(f"{user}/{ix}", {"indexconfig": ixconfig(user, True), "projects": {}, "files": []})
        for ix, v, records in proj.releases:
            index = f"{user}/{ix}"
            entry = indexes[index]
            fn, data = tiny_wheel(name, v)
            sha = hashlib.sha256(data).hexdigest()
            rel = Path(user) / ix / name / v / fn
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
            entry["projects"].setdefault(name, {})[v] = {"name": name, "version": v, "metadata_version": "2.1",
                                                          "summary": "a release seeded by the ci-kit benchmarks"}
            # the index's log names the uploader: the gate counts only records of a trusted one
            log = [{"what": "upload", "who": user, "when": [2020, 1, 1, 0, 0, 0], "dst": index}]
            entry["files"].append({"type": "releasefile", "projectname": name, "version": v, "relpath": str(rel), "log": log,
                                   "entrymapping": {"last_modified": stamp, "hashes": {"sha256": sha}}})
            recs = records(fn, sha)
            for i, rec in enumerate(recs):
                trel = Path(user) / ix / name / f"sha256={sha}" / f"{fn}.toxresult-{i}"
                (dest / trel).parent.mkdir(parents=True, exist_ok=True)
                (dest / trel).write_text(json.dumps(rec))
                entry["files"].append({"type": "toxresult", "projectname": name, "version": v, "relpath": str(trel),
                                       "log": log, "for_entrypath": str(rel), "entrymapping": {"last_modified": stamp}})
            counts["releases"] += 1
            counts["files"] += 1
            counts["records"] += len(recs)
    dump = {"dumpversion": "2", "pythonversion": list(sys.version_info), "devpi_server": server_version,
            "users": users, "indexes": indexes}
    (dest / "dataindex.json").write_text(json.dumps(dump))
    return {**counts, "dump_s": time.perf_counter() - t0}


def seed_by_import(server_dir: Path, dump_dir: Path, projects: list[Project]) -> dict[str, Any]:
    """Generate the dump and import it into a not yet initialised server directory."""
    import subprocess

    info = write_dump(dump_dir, projects)
    t0 = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).with_name("devpi-import")), "--serverdir", str(server_dir),
                           "--no-root-pypi", str(dump_dir)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"devpi-import failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    info["import_s"] = time.perf_counter() - t0
    info["total_s"] = info["dump_s"] + info["import_s"]
    info["method"] = "devpi-import of a generated export dump"
    return info
