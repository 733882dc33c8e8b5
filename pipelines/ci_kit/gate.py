"""The gate's rule, as a function of records already read: no I/O here.

A release passes when every file has, for its own sha256 and the commit job 1 built it
from, a trusted record of a run that passed and really ran tests, on every configured
Python the file serves: a wheel on each configured Python its tags admit; the sdist on
each configured Python that no wheel serves (a cp311-only release must have its sdist
tested on 3.12), and at least once. The latest record per Python wins, so a later
failure withdraws an earlier pass. Kept pure so that the rule can be read in one place
and tested without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ci_kit.dists import wheel_fits
from ci_kit.evidence import FileRecords, Record
from ci_kit.listing import ReleaseFile


@dataclass
class Verdict:
    failed: dict[str, str] = field(default_factory=dict)  # basename -> why not
    evidence: list[str] = field(default_factory=list)  # what passed, one line per file
    used: dict[str, list[Record]] = field(default_factory=dict)  # basename -> the passing records relied on
    other: list[str] = field(default_factory=list)  # problems of the release as a whole

    @property
    def problems(self) -> list[str]:
        return self.other + list(self.failed.values())

    @property
    def passed(self) -> bool:
        return not self.problems


def _needed(f: ReleaseFile, files: list[ReleaseFile], pythons: Sequence[str]) -> list[str]:
    if f.kind == "wheel":
        return [py for py in pythons if wheel_fits(f.basename, py)]
    wheels = [w for w in files if w.kind == "wheel"]
    return [py for py in pythons if not any(wheel_fits(w.basename, py) for w in wheels)]


def judge(files: list[ReleaseFile], records: dict[str, FileRecords], pythons: Sequence[str], commit: str) -> Verdict:
    verdict = Verdict()
    for f in files:
        short = f"{f.basename} (sha256 {f.sha256[:16]}…)"
        tests = records[f.basename].of("test", f.sha256)
        mine = [r for r in tests if r.commit == commit]
        latest: dict[str, Record] = {}
        for r in mine:  # index order is upload order: the last record per Python is the latest
            latest[r.python] = r
        needed = _needed(f, files, pythons)
        if f.kind == "wheel" and not needed:
            verdict.failed[f.basename] = (f"{short} fits none of the configured Pythons ({', '.join(pythons)}), so nothing tested it")
            continue
        if not mine:
            why = (f" (results exist only for other commits than {commit[:12]})" if tests
                   else " (results exist only for other bytes)" if _other_bytes(records[f.basename], f) else "")
            verdict.failed[f.basename] = f"{short} has no test result{why}"
            continue
        if f.kind == "sdist" and not needed:
            needed = [py for py in pythons if py in latest][:1] or list(pythons[:1])
        missing = [py for py in needed if py not in latest]
        failed = [py for py in needed if py in latest and not latest[py].passed]
        if failed:
            hollow = [py for py in failed if latest[py].fields["passed"] is True]
            what = "ran no tests" if hollow and len(hollow) == len(failed) else "failed its tests"
            verdict.failed[f.basename] = f"{short} {what} on Python {', '.join(failed)}"
        elif missing:
            verdict.failed[f.basename] = f"{short} has no result on Python {', '.join(missing)}"
        else:
            used = [latest[py] for py in needed]
            verdict.used[f.basename] = used
            counts = ", ".join(f"{py}: {r.fields['tests']} test{'' if r.fields['tests'] == 1 else 's'}" if r.fields.get("counted") else f"{py}: no test count (JUnit waived)"
                               for py, r in zip(needed, used, strict=True))
            verdict.evidence.append(f"{f.basename}: passed on Python {counts}; commit {commit[:12]}; by {', '.join(sorted({r.by for r in used}))}")
    return verdict


def _other_bytes(recs: FileRecords, f: ReleaseFile) -> bool:
    return any(r.kind == "test" and r.sha256 != f.sha256 for r in recs.records)
