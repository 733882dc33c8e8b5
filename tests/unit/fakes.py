"""Stand-ins for the fast layer: an in-memory devpi index, distribution files and a runner
that starts nothing.

FakeIndex has the methods of ci_kit.index.Index that the stages call, and keeps what it
holds in devpi's own JSON shape (a release's `+links` with `log[].who`, `hashes`,
`for_href`), read back through index.py's own parser: the uploader names the gate relies
on come from the log, as on a real server, and never from a record's content. It is no
specification of devpi: the end-to-end suites (tests/test_*.py) run a real devpi-server.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_kit import console
from ci_kit.build import MANIFEST, BuiltFile, Manifest
from ci_kit.errors import AuthError, CiKitError, NotFound
from ci_kit.index import Index
from ci_kit.listing import Release, ReleaseFile, ResultLink, parse_release


def _normalize(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


class FakeIndex:
    """devpi in a dict. Writes go in as `user` (the logged-in one), like the real server's
    log says; `attach_as` attaches as anyone (None: anonymous), as an open index allows."""

    def __init__(self, url: str = "http://devpi.invalid", user: str = "ci", timeout: float = 60.0) -> None:
        self.url = url
        self.user = user
        self.timeout = timeout
        self.token: Any = None
        self.password: str | None = None
        self.configs: dict[str, dict[str, Any]] = {}  # "user/index" -> devpi's index config
        self.data: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}  # index -> project -> version -> release JSON
        self.blobs: dict[str, bytes] = {}  # href -> bytes (files and attached records)
        self.writes: list[tuple[str, str]] = []  # (what, where), to assert that nothing changed
        self.reads = 0
        self.clock = time.time  # the server's clock: the log's `when` of each write (claims.py compares them)

    # -- set-up ------------------------------------------------------------------------------

    def create_index(self, index: str, *, volatile: bool, bases: list[str] | None = None) -> bool:
        if index in self.configs:
            return False
        owner = index.split("/", 1)[0]
        self.configs[index] = {"type": "stage", "volatile": volatile, "bases": bases or [],
                               "acl_upload": [owner], "acl_toxresult_upload": [owner]}
        self.data[index] = {}
        return True

    def create_user(self, user: str, password: str) -> bool:
        console.add_secret(password)
        return True

    def login(self, password: str) -> None:
        console.add_secret(password)
        self.password = password

    # -- reading (Index's signatures) --------------------------------------------------------

    def index_config(self, index: str) -> dict[str, Any]:
        self.reads += 1
        if index not in self.configs:
            raise NotFound(f"index {index} does not exist on {self.url}",
                           "create it (ci-kit server start creates <user>/unstable, testing and stable) or fix the index name")
        return {**self.configs[index], "projects": sorted(self.data[index])}

    def release(self, index: str, name: str, version: str) -> Release | None:
        self.index_config(index)
        data = self.data[index].get(_normalize(name), {}).get(version)
        return None if data is None else parse_release(index, json.loads(json.dumps(data)))

    def releases(self, index: str, name: str) -> dict[str, Release]:
        self.index_config(index)
        return {v: parse_release(index, json.loads(json.dumps(d))) for v, d in self.data[index].get(_normalize(name), {}).items()}

    def file_versions(self, index: str, name: str) -> list[str] | None:
        """What the simple page gives: the normalised versions that have files."""
        from packaging.version import Version

        return sorted(str(Version(v)) for v, rel in self.releases(index, name).items() if rel.files)

    # index.py's own read-back check, over this index's release(): the comparison under test is the real one
    read_back = Index.read_back
    read_result = Index.read_result  # the real parsing of what read_result_bytes returns

    def projects(self, index: str) -> list[str]:
        return list(self.index_config(index)["projects"])

    def read_result_bytes(self, link: ResultLink) -> bytes:
        data = self.blobs[link.url]
        if link.sha256 and hashlib.sha256(data).hexdigest() != link.sha256:
            raise CiKitError(f"{link.url}: the record's bytes differ from the index's sha256",
                             "the index or a proxy changed it in transit; retry, then check the server")
        return data

    def download(self, f: ReleaseFile, dest: Path) -> Path:
        if f.url not in self.blobs:
            raise NotFound(f"{f.basename} with sha256 {f.sha256[:16]}… is gone from the index (404): it was replaced or removed",
                           "run again: the new state is judged afresh")
        data = self.blobs[f.url]
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise CiKitError(f"{f.basename}: downloaded sha256 {hashlib.sha256(data).hexdigest()} differs from the index's {f.sha256}",
                             "the index or a proxy changed the file in transit; retry, then check the server")
        (dest / f.basename).write_bytes(data)
        return dest / f.basename

    # -- writing -----------------------------------------------------------------------------

    def upload(self, index: str, path: Path, metadata: dict[str, Any]) -> None:
        self.put(index, path.name, path.read_bytes(), metadata["name"], metadata["version"])

    def put(self, index: str, basename: str, data: bytes, name: str, version: str, *, who: str | None = None) -> ReleaseFile:
        """A file on the index as devpi stores it: a non-volatile index refuses other bytes
        under a name it holds (409) and takes identical ones again."""
        self.index_config(index)
        who = self.user if who is None else who
        sha = hashlib.sha256(data).hexdigest()
        rel = self.data[index].setdefault(_normalize(name), {}).setdefault(
            version, {"name": _normalize(name), "version": version, "+links": []})
        old = next((link for link in rel["+links"] if link["rel"] == "releasefile" and link["href"].endswith("/" + basename)), None)
        if old is not None and old["hashes"]["sha256"] != sha and not self.configs[index]["volatile"]:
            raise CiKitError(f"POST {self.url}/{index}/: 409 {basename} already exists in non-volatile index",
                             "see the devpi-server log")
        if old is not None and old["hashes"]["sha256"] == sha:
            return self._file(index, name, version, basename)
        if old is not None:  # a volatile index replaces the file and forgets its results
            rel["+links"] = [x for x in rel["+links"] if x is not old and x.get("for_href") != old["href"]]
        href = f"{self.url}/{index}/+f/{sha[:3]}/{sha[3:16]}/{basename}"
        self.blobs[href] = data
        rel["+links"].append({"rel": "releasefile", "href": href, "hashes": {"sha256": sha},
                              "log": [{"what": "upload", "who": who, "dst": index, "when": self._when()}]})
        self.writes.append(("upload", href))
        return self._file(index, name, version, basename)

    def attach_result(self, f: ReleaseFile, record: dict[str, Any] | bytes) -> str:
        return self.attach_as(self.user, f, record)

    result_body = staticmethod(Index.result_body)

    def keep_results(self, release: Release, sent: list[tuple[ReleaseFile, bytes]], *, settle: float = 0.0,
                     rounds: int = 4) -> None:
        """The real check (read back, attach again what was lost), without the wait."""
        Index.keep_results(self, release, sent, settle=0.0, rounds=rounds)  # type: ignore[arg-type]

    def lose(self, href: str) -> None:
        """Drop a record's link, as devpi-postgresql's lost update does (the blob stays)."""
        for project in self.data.values():
            for versions in project.values():
                for rel in versions.values():
                    rel["+links"] = [x for x in rel["+links"] if x["href"] != href]

    def attach_as(self, who: str | None, f: ReleaseFile, record: dict[str, Any] | bytes | str) -> str:
        """Attach a record as `who` (None: anonymous); the log says so, the content may say anything."""
        body = record if isinstance(record, bytes) else (record.encode() if isinstance(record, str)
                                                         else console.mask(json.dumps(record)).encode())
        index = f.url[len(self.url) + 1:].split("/+f/", 1)[0]
        rel = next(r for project in self.data[index].values() for r in project.values()
                   if any(x["href"] == f.url for x in r["+links"]))
        href = f"{f.url}.toxresult{len([x for x in rel['+links'] if x['rel'] == 'toxresult'])}"
        self.blobs[href] = body
        rel["+links"].append({"rel": "toxresult", "href": href, "for_href": f.url,
                              "hashes": {"sha256": hashlib.sha256(body).hexdigest()},
                              "log": [{"what": "upload", "who": who, "dst": index, "when": self._when()}]})
        self.writes.append(("attach", href))
        return href

    def _when(self) -> list[int]:
        """devpi's log time: `gmtime()[:6]` of the server's clock."""
        return list(time.gmtime(self.clock())[:6])

    def replace_bytes(self, f: ReleaseFile, data: bytes) -> None:
        """Swap a file's bytes behind the listing (a proxy or a racing re-upload)."""
        self.blobs[f.url] = data

    def _file(self, index: str, name: str, version: str, basename: str) -> ReleaseFile:
        rel = self.release(index, name, version)
        assert rel is not None
        found = rel.file(basename)
        assert found is not None
        return found


class NoPassword(FakeIndex):
    """An index whose every write needs a login ci-kit does not have."""

    def upload(self, index: str, path: Path, metadata: dict[str, Any]) -> None:
        raise AuthError("POST: 401", "check the credentials")


# -- distribution files -----------------------------------------------------------------------

def losing_index() -> LosingIndex:
    index = LosingIndex(losses=0)
    for name, volatile in (("unstable", True), ("testing", False), ("stable", False)):
        index.create_index(f"ci/{name}", volatile=volatile)
    return index


class LosingIndex(FakeIndex):
    """A devpi-postgresql primary under concurrent writes: the first `losses` records
    attached are dropped from the release's list right after the write (a lost update)."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    def attach_as(self, who: str | None, f: ReleaseFile, record: dict[str, Any] | bytes | str) -> str:
        href = super().attach_as(who, f, record)
        if self.losses:
            self.losses -= 1
            self.lose(href)
        return href


def wheel_bytes(name: str, version: str, tag: str = "py3-none-any", module: str = "") -> bytes:
    """A minimal wheel: METADATA, WHEEL and one module (what push's read_metadata and the
    gate's tag matching read)."""
    dist = name.replace("-", "_")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{module or dist}/__init__.py", "")
        zf.writestr(f"{dist}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}-{version}.dist-info/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
    return buf.getvalue()


def sdist_bytes(name: str, version: str) -> bytes:
    dist = name.replace("-", "_")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
        info = tarfile.TarInfo(f"{dist}-{version}/PKG-INFO")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def dist_files(name: str, version: str, wheel_tag: str = "py3-none-any") -> dict[str, bytes]:
    dist = name.replace("-", "_")
    return {f"{dist}-{version}-{wheel_tag}.whl": wheel_bytes(name, version, wheel_tag),
            f"{dist}-{version}.tar.gz": sdist_bytes(name, version)}


# -- a committed product and its built files ------------------------------------------------------

GIT_ID = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "T",
          "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z",
          "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z"}  # a fixed commit time: builds are reproducible from it
COMMIT_TIME = 1704164645


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ID}).stdout.strip()


def committed_product(root: Path, ignore: str = "dist/\n") -> Path:
    """A git repository with one commit of a bare churn-model 1.0.0 pyproject.toml."""
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "churn-model"\nversion = "1.0.0"\n')
    (root / ".gitignore").write_text(ignore)
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "product", cwd=root)
    return root


def write_built(project: Path, commit: str) -> Manifest:
    """churn-model 1.0.0's two files in project/dist with the manifest `ci-kit build` writes."""
    dist = project / "dist"
    dist.mkdir()
    files = []
    for name, data in dist_files("churn-model", "1.0.0").items():
        (dist / name).write_bytes(data)
        files.append(BuiltFile(name, hashlib.sha256(data).hexdigest(), len(data)))
    manifest = Manifest("churn-model", "1.0.0", commit, files)
    (dist / MANIFEST).write_text(json.dumps(manifest.to_json()))
    return manifest


# -- a runner that starts nothing ---------------------------------------------------------------

@dataclass
class FakeRun:
    """Has runner.run's call shape; answers each call from `answer` (argv -> (rc, output)),
    or with rc 0 and no output, and remembers every call."""

    answer: Any = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
                 show: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in argv]
        self.calls.append({"argv": argv, "cwd": cwd, "env": dict(env) if env is not None else None, "timeout": timeout})
        rc, out = self.answer(argv, cwd) if self.answer else (0, "")
        return subprocess.CompletedProcess(argv, rc, out)
