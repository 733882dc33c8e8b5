"""The two jobs of the flow, and `run` (both in turn, then the image if configured).

Job 2 needs nothing from job 1 but NAME==VERSION and the commit: everything else comes
from the index, so any agent or runner can run it and it can be retried. A pull request's
build-only mode runs job 2's tests on the built files instead (run_local_tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_kit import build as build_mod
from ci_kit import console, testrun
from ci_kit import promote as promote_mod
from ci_kit import push as push_mod
from ci_kit.config import Settings
from ci_kit.contract import FlowJson, JobTwoJson
from ci_kit.index import Index
from ci_kit.release import Spec
from ci_kit.testreport import RunReport


def build_and_push(index: Index, settings: Settings) -> push_mod.PushResult:
    index.index_config(settings.index.unstable_index)  # fail fast, before a build, if the index is wrong
    manifest = build_mod.build(settings.project_dir, settings.build)
    return push_mod.push(index, settings.index, manifest, settings.path(settings.build.dist_dir))


@dataclass(frozen=True)
class JobTwo:
    """Job 2's result: the tests of the release, then its promotion."""

    report: RunReport
    promotion: promote_mod.Promotion

    def to_json(self) -> JobTwoJson:
        p = self.promotion.to_json()
        return {**p, "commit": self.report.commit, "tests": self.report.to_json()}


@dataclass(frozen=True)
class Flow:
    """`ci-kit run`'s result: job 1's push, job 2, and the image when run.image is set."""

    pushed: push_mod.PushResult
    two: JobTwo
    image: dict[str, Any] | None = None  # `ci-kit image --json`'s object (image's own result)

    def to_json(self) -> FlowJson:
        pushed, p = self.pushed.to_json(), self.two.promotion.to_json()
        out: FlowJson = {
            "name": pushed["name"], "version": pushed["version"], "requirement": pushed["requirement"],
            "commit": pushed["commit"], "index": pushed["index"],
            "files": pushed["files"],  # as pushed, with their URLs (the promotion's carry none)
            "promoted_to": p["promoted_to"], "changed": p["changed"], "forced": p["forced"], "dry_run": p["dry_run"],
            "already": p["already"], "gate": p["gate"], "tests": self.two.report.to_json()}
        if self.image is not None:
            out["image"] = self.image
        return out


def test_and_promote(index: Index, settings: Settings, spec: Spec, *, commit: str | None = None,
                     junit_dir: Path | None = None) -> JobTwo:
    report = testrun.run_tests(index, settings.index, settings.test, settings.project_dir, spec, commit=commit,
                           junit_dir=junit_dir, secret_files=settings.password_files, quality=settings.quality)
    promotion = promote_mod.promote(index, settings.index, settings.test.python_versions, spec, quality=settings.quality)
    return JobTwo(report, promotion)


def run_local_tests(settings: Settings, dist_dir: Path, spec: Spec | None, *, commit: str | None = None,
                    junit_dir: Path | None = None, only_python: str | None = None) -> RunReport:
    """`ci-kit test --dist DIR`: job 2's tests on the files `ci-kit build` left in DIR, for
    a pull request that may not upload. No index is asked for the files and none is
    written to, so no credential is needed and the gate never counts these runs; the
    product's dependencies still come from dependency-index-url, as in job 2."""
    from ci_kit import repo, testfiles

    pythons = testrun.pythons_to_run(settings.test.python_versions, only_python)
    repo.require_project(settings.project_dir)
    source, built, commit = testfiles.dist_source(dist_dir, settings.project_dir, spec, commit)
    return testrun.run_plan(source, settings.test, settings.project_dir, built, commit, pythons=pythons, junit_dir=junit_dir,
                            only_python=only_python, secret_files=settings.password_files)


def run(index: Index, settings: Settings) -> Flow:
    pushed = build_and_push(index, settings)
    console.step(f"run: job 1 done: {pushed.manifest.requirement} at {pushed.manifest.commit[:12]}")
    spec = Spec(pushed.manifest.name, pushed.manifest.version)
    target = promote_mod.verified(index, settings.index, settings.test.python_versions, spec)
    if target is not None:
        console.step(f"run: {spec} is already on {target} with its evidence verified there; not testing it again")
        two = JobTwo(RunReport(spec, pushed.manifest.commit),
                     promote_mod.promote(index, settings.index, settings.test.python_versions, spec, quality=settings.quality))
    else:
        two = test_and_promote(index, settings, spec, commit=pushed.manifest.commit)
    if not settings.run.image:
        return Flow(pushed, two)
    from ci_kit import image

    return Flow(pushed, two, image.build_image_for_run(settings, spec, index=index))  # provided by the image module
