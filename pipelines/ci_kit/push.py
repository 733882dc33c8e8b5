"""`ci-kit push`: upload the built files to the unstable index, read them back, and
record on each the commit they were built from and the whole file set (the build record).

All files are checked against the build manifest and compared with the index before any
is uploaded, so a corrupted dist file or a collision changes nothing; files already
there with identical bytes are skipped (a re-run is a no-op that adds a missing build
record). Job 2 refuses a release without complete build records: a job 1 that died
between uploads cannot get a partial release tested and promoted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ci_kit import console, evidence, results
from ci_kit.build import Manifest
from ci_kit.config import IndexSettings
from ci_kit.contract import PushedFileJson, PushJson
from ci_kit.dists import read_metadata
from ci_kit.errors import CiKitError, Collision
from ci_kit.index import Index
from ci_kit.listing import Release, refuse_clashes

UNIQUE_VERSIONS_HINT = ("each commit needs a version of its own: use setuptools_scm or hatch-vcs "
                        "(keeping the +g<sha> local part on untagged commits), or bump the version")


@dataclass(frozen=True)
class PushResult:
    manifest: Manifest
    index: str
    uploaded: list[str]
    skipped: list[str]
    urls: dict[str, str]

    def to_json(self) -> PushJson:
        m = self.manifest
        return {"name": m.name, "version": m.version, "requirement": m.requirement, "commit": m.commit,
                "index": self.index, "files": self.files}

    @property
    def files(self) -> list[PushedFileJson]:
        """The manifest's files as they are on the index: with their URLs there."""
        return [{"filename": f.filename, "sha256": f.sha256, "url": self.urls.get(f.filename, "")} for f in self.manifest.files]


def push(index: Index, cfg: IndexSettings, manifest: Manifest, dist: Path) -> PushResult:
    """Upload the manifest's files from dist to cfg.unstable_index, read them back, record the build."""
    target = cfg.unstable_index
    index.index_config(target)
    existing = index.release(target, manifest.name, manifest.version)
    refuse_clashes(existing, manifest.hashes, "this build", UNIQUE_VERSIONS_HINT)
    manifest.check_files(dist)
    if existing is not None:
        _check_built_from(index, existing, manifest, cfg.trusted)
    uploaded, skipped = [], []
    for f in manifest.files:
        if existing is not None and existing.file(f.filename) is not None:
            skipped.append(f.filename)
            console.step(f"push: {f.filename} already on {target} with identical bytes")
            continue
        path = dist / f.filename
        console.step(f"push: {f.filename} → {target}")
        index.upload(target, path, read_metadata(path))
        uploaded.append(f.filename)
    after, wrong = index.read_back(target, manifest.name, manifest.version, manifest.hashes)
    if after is None or wrong:
        raise CiKitError("after upload, " + "; ".join(wrong), "the index did not keep what was sent; check the devpi-server log")
    urls = {f.basename: f.url for f in after.files if f.basename in manifest.hashes}
    _record_build(index, after, manifest, cfg.trusted)
    console.step(f"push: {manifest.requirement} on {target}: {len(uploaded)} uploaded, {len(skipped)} already there; sha256 verified")
    return PushResult(manifest, target, uploaded, skipped, urls)


def _check_built_from(index: Index, existing: Release, manifest: Manifest, trusted: frozenset[str]) -> None:
    """Identical bytes from another commit (a moved tag, a change only to tests) must not
    inherit that commit's record: the version has to say which commit it is."""
    for f in existing.files:
        for r in evidence.read(index, existing, f, trusted).of("build", f.sha256):
            if r.commit != manifest.commit:
                raise Collision(f"{manifest.requirement} on {existing.index} was built from commit {r.commit[:12]}; "
                                f"this is {manifest.commit[:12]}", UNIQUE_VERSIONS_HINT)


def _record_build(index: Index, release: Release, manifest: Manifest, trusted: frozenset[str]) -> None:
    files = [{"filename": f.filename, "sha256": f.sha256} for f in manifest.files]
    for f in release.files:
        if f.basename not in {x["filename"] for x in files} or evidence.read(index, release, f, trusted).of("build", f.sha256):
            continue
        index.attach_result(f, results.build_record(filename=f.basename, sha256=f.sha256, commit=manifest.commit, files=files))
