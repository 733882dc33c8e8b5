"""The two jobs of the flow, and `run` (both in turn, then the image if configured).

Job 2 needs nothing from job 1 but NAME==VERSION and the commit: everything else comes
from the index, so any agent or runner can run it and it can be retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci_kit import build as build_mod
from ci_kit import console
from ci_kit import promote as promote_mod
from ci_kit import push as push_mod
from ci_kit import test as test_mod
from ci_kit.config import Settings
from ci_kit.index import Index
from ci_kit.release import Spec


def build_and_push(settings: Settings, index: Index | None = None) -> push_mod.PushResult:
    index = index or Index.from_settings(settings)
    index.index_config(settings.index.unstable_index)  # fail fast, before a build, if the index is wrong
    manifest = build_mod.build(settings)
    return push_mod.push(settings, manifest, index)


@dataclass
class JobTwo:
    report: test_mod.TestReport
    promotion: promote_mod.Promotion

    def outputs(self) -> dict[str, Any]:
        return {**self.promotion.outputs(), "commit": self.report.commit, "tests": self.report.to_json()}


def test_and_promote(settings: Settings, spec: Spec, commit: str | None = None, pythons: list[str] | None = None,
                     junit_dir: Path | None = None, index: Index | None = None) -> JobTwo:
    index = index or Index.from_settings(settings)
    report = test_mod.test(settings, spec, commit=commit, pythons=pythons, junit_dir=junit_dir, index=index)
    promotion = promote_mod.promote(settings, spec, index=index)
    return JobTwo(report, promotion)


def run(settings: Settings) -> dict[str, Any]:
    index = Index.from_settings(settings)
    pushed = build_and_push(settings, index)
    console.step(f"run: job 1 done: {pushed.manifest.requirement} at {pushed.manifest.commit[:12]}")
    spec = Spec(pushed.manifest.name, pushed.manifest.version)
    target = promote_mod.verified(settings, spec, index)
    if target is not None:
        console.step(f"run: {spec} is already on {target} with its evidence verified there; not testing it again")
        two = JobTwo(test_mod.TestReport(spec, pushed.manifest.commit), promote_mod.promote(settings, spec, index=index))
    else:
        two = test_and_promote(settings, spec, commit=pushed.manifest.commit, index=index)
    out = {**pushed.outputs(), **two.outputs()}
    if settings.run.image:
        from ci_kit import image

        out["image"] = image.build_image_for_run(settings, spec, index=index)  # provided by the image module
    return out
