"""`ci-kit promote NAME==VERSION`: the gate, then devpi's server-side copy.

Everything is checked before anything is copied: the target's state (already promoted
is a no-op; other bytes are a collision) and, per file, a passing result recorded for
its exact sha256. Promotion itself is devpi's PUSH, so the bytes never leave the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines import console, results
from pipelines.config import Settings
from pipelines.errors import CiKitError, Collision, GateRefused, NotFound
from pipelines.index import Index, Release
from pipelines.release import Spec, target_index
from pipelines.test import wheel_fits


@dataclass
class Promotion:
    spec: Spec
    source: str
    target: str
    changed: bool
    forced: bool = False
    dry_run: bool = False
    gate: list[str] = field(default_factory=list)  # what the gate found, one line per file
    files: list[dict[str, str]] = field(default_factory=list)

    def outputs(self) -> dict[str, Any]:
        return {"requirement": str(self.spec), "name": self.spec.name, "version": self.spec.version,
                "promoted_to": self.target, "changed": self.changed, "forced": self.forced,
                "dry_run": self.dry_run, "files": self.files, "gate": self.gate}


def latest_by_python(outcomes: list[results.Outcome]) -> dict[str, results.Outcome]:
    """Index order is upload order, so the last record per Python is the latest."""
    latest: dict[str, results.Outcome] = {}
    for o in outcomes:
        latest[o.python or "?"] = o
    return latest


def check_gate(index: Index, release: Release, pythons: list[str]) -> tuple[list[str], list[str]]:
    """(problems, evidence): every file needs a passing latest result for its own sha256;
    wheels on every configured Python they fit."""
    problems, evidence = [], []
    for f in release.files:
        outcomes = [o for o in (results.outcome(index.read_result(link)) for link in release.results_for(f))
                    if o is not None and o.kind == "test"]
        mine = [o for o in outcomes if o.sha256 == f.sha256]
        if not mine:
            why = " (results exist only for other bytes)" if outcomes else ""
            problems.append(f"{f.basename} (sha256 {f.sha256[:16]}…) has no test result{why}")
            continue
        latest = latest_by_python(mine)
        failing = sorted(py for py, o in latest.items() if not o.passed)
        if failing:
            problems.append(f"{f.basename} (sha256 {f.sha256[:16]}…) failed its tests on Python {', '.join(failing)}")
            continue
        if f.kind == "wheel":
            missing = [py for py in pythons if wheel_fits(f.basename, py) and py not in latest]
            if missing:
                problems.append(f"{f.basename} (sha256 {f.sha256[:16]}…) has no result on Python {', '.join(missing)}")
                continue
        evidence.append(f"{f.basename}: passed on Python {', '.join(sorted(latest))} ({', '.join(sorted({o.source for o in latest.values()}))})")
    return problems, evidence


def promote(settings: Settings, spec: Spec, *, dry_run: bool = False, force: bool = False,
            index: Index | None = None) -> Promotion:
    index = index or Index.from_settings(settings)
    source = settings.unstable_index
    target = target_index(settings, spec.version)
    release = index.release(source, spec.name, spec.version)
    if release is None or not release.files:
        raise NotFound(f"{spec} is not on {source}", "push it first (ci-kit build-and-push)")
    files = [{"filename": f.basename, "sha256": f.sha256} for f in release.files]
    promo = Promotion(spec, source, target, changed=False, forced=force, dry_run=dry_run, files=files)

    there = index.release(target, spec.name, spec.version)
    if there is not None and there.files:
        clashes = [f"{f.basename}: {target} has sha256 {t.sha256}, {source} has {f.sha256}"
                   for f in release.files if (t := there.file(f.basename)) is not None and t.sha256 != f.sha256]
        if clashes:
            raise Collision(f"{spec} is already on {target} with different bytes: " + "; ".join(clashes),
                            "stable releases are immutable: build a new version")
        missing = [f.basename for f in release.files if there.file(f.basename) is None]
        if not missing:
            console.step(f"promote: {spec} is already on {target} with identical bytes; nothing to do")
            promo.gate = ["already promoted"]
            return promo
        raise Collision(f"{spec} is on {target} without {', '.join(missing)}; a non-volatile index cannot take more files for it",
                        "build a new version")

    problems, evidence = check_gate(index, release, settings.python_versions)
    promo.gate = evidence + problems
    if problems and not force:
        raise GateRefused(f"{spec} cannot be promoted: " + "; ".join(problems),
                          "run `ci-kit test " + str(spec) + "` (or test-and-promote); --force overrides and is recorded")
    if problems:
        console.step(f"promote: FORCED past the gate by {results.actor()}: " + "; ".join(problems))
    for line in evidence:
        console.step(f"promote: gate: {line}")
    if dry_run:
        console.step(f"promote: dry run: would copy {spec} from {source} to {target} ({len(files)} files)")
        return promo

    console.step(f"promote: {spec}: {source} → {target} (server-side copy)")
    index.push(source, spec.name, spec.version, target)
    after = index.release(target, spec.name, spec.version)
    for f in release.files:
        t = after.file(f.basename) if after else None
        if t is None or t.sha256 != f.sha256:
            raise CiKitError(f"after promotion {f.basename} on {target} is {t.sha256 if t else 'missing'}, expected {f.sha256}",
                             "check the devpi-server log")
        index.attach_result(t, results.promotion_record(filename=f.basename, sha256=f.sha256, source=source, target=target,
                                                        forced=bool(problems), commit=_commit_of(index, release, f)))
    promo.changed = True
    promo.forced = bool(problems)
    console.step(f"promote: {spec} is on {target}")
    return promo


def _commit_of(index: Index, release: Release, f: Any) -> str:
    for link in release.results_for(f):
        o = results.outcome(index.read_result(link))
        if o is not None and o.detail.get("commit"):
            return str(o.detail["commit"])
    return ""
