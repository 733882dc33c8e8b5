"""Where the files under test come from: the unstable index (job 2, `ci-kit test
NAME==VERSION`) or a folder that `ci-kit build` wrote (`ci-kit test --dist DIR`, a pull
request's build-only mode). testrun.run_plan runs the same loop on either.

The folder's files are never uploaded and their results never attached: a credential is
not needed and the promotion gate, which counts only records on the index, cannot see
them. What makes them "the exact files" is the build manifest (ci-kit-build.json): the
file names, their sha256 and the commit; each file is copied out of the folder and its
copy hashed, and the copy is what gets installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ci_kit import console, repo
from ci_kit.build import MANIFEST, Manifest
from ci_kit.dists import sha256_of
from ci_kit.errors import BuildError, ProjectError
from ci_kit.index import Index
from ci_kit.listing import Release, ReleaseFile
from ci_kit.release import Spec

DIST_HINT = "pass the folder `ci-kit build` wrote (its dist-dir, e.g. dist), after a build of this repository"


@dataclass(frozen=True)
class Source:
    """The files of one release and how to get each: `fetch` puts a checked copy into a
    folder; `attach` sends a run's record to the index (None: nothing leaves this machine)."""

    where: str  # USER/INDEX, or the folder, for messages
    files: list[ReleaseFile]
    fetch: Callable[[ReleaseFile, Path], Path]
    attach: Callable[[list[tuple[ReleaseFile, dict[str, Any]]]], object] | None  # all of a run's records at once


def index_source(index: Index, release: Release, *, alongside: bool = False) -> Source:
    """Downloaded, each file's sha256 checked against the index's listing; records attached.
    `alongside`: other jobs test their share of this release at the same time (a CI
    matrix job, `--only-python`), so the records are read back once the writes settled
    (Index.keep_results). Without a matrix nothing else writes a record another job
    relies on: two pipelines testing one release (a branch and its tag) write the same
    evidence, and whichever record survives serves the gate."""

    def fetch(f: ReleaseFile, dest: Path) -> Path:
        path = index.download(f, dest)
        console.step(f"test: {f.basename} downloaded, sha256 {f.sha256[:16]}… verified")
        return path

    def attach(records: list[tuple[ReleaseFile, dict[str, Any]]]) -> None:
        sent = [(f, index.result_body(record)) for f, record in records]
        for f, body in sent:
            index.attach_result(f, body)
        if alongside:
            index.keep_results(release, sent)

    return Source(release.index, release.files, fetch, attach)


def dist_source(dist_dir: Path, project_dir: Path, spec: Spec | None, commit: str | None) -> tuple[Source, Spec, str]:
    """The files `ci-kit build` left in dist_dir, with the release and commit its manifest
    names. Refused (ProjectError) when the folder or manifest is missing, or holds another
    release than `spec`, or another commit than `commit`, or one this repository lacks;
    a file that differs from the manifest is BuildError, as for `ci-kit push`."""
    if not dist_dir.is_dir():
        raise ProjectError(f"--dist {dist_dir}: no such folder", DIST_HINT)
    if not (dist_dir / MANIFEST).is_file():
        raise ProjectError(f"--dist {dist_dir}: no {MANIFEST} there, so no built files to test", DIST_HINT)
    manifest = Manifest.read(dist_dir)
    built = Spec(manifest.name, manifest.version)
    if spec is not None and spec != built:
        raise ProjectError(f"--dist {dist_dir} holds {built}, not {spec}",
                           f"test {built}, or pass the folder that holds {spec}")
    if not manifest.files:
        raise ProjectError(f"--dist {dist_dir}: its {MANIFEST} names no file", DIST_HINT)
    if commit is not None and repo.resolve_commit(project_dir, commit) != manifest.commit:
        raise ProjectError(f"{built} in {dist_dir} was built from commit {manifest.commit[:12]}, not {commit}",
                           "leave --commit out: the build manifest names the commit")
    try:
        repo.resolve_commit(project_dir, manifest.commit)
    except ProjectError:
        raise ProjectError(f"{built} in {dist_dir} was built from commit {manifest.commit[:12]}, which the repository "
                           f"at {project_dir} does not have", "test the files in the repository that built them "
                           "(--project-dir), with its whole history fetched") from None
    manifest.check_files(dist_dir)
    files = [ReleaseFile(f.filename, (dist_dir / f.filename).resolve().as_uri(), f.sha256) for f in manifest.files]
    return Source(str(dist_dir), files, _copy_checked, None), built, manifest.commit


def _copy_checked(f: ReleaseFile, dest: Path) -> Path:
    """The local counterpart of a download: copy, then hash the copy (what is installed)."""
    src = Path(unquote(urlparse(f.url).path))
    target = dest / f.basename
    shutil.copyfile(src, target)
    actual = sha256_of(target)
    if actual != f.sha256:  # changed since check_files: someone is writing into the folder
        raise BuildError(f"{src} changed while it was being tested: sha256 {actual}, the build manifest says {f.sha256}",
                         "leave the dist folder alone while ci-kit tests it, and run again")
    console.step(f"test: {f.basename} from {src.parent}, sha256 {actual} (local file: no index, nothing attached)")
    return target
