"""`ci-kit promote NAME==VERSION`: the gate, then a copy of exactly the gated bytes.

Why not devpi's server-side PUSH: it copies whatever the volatile unstable index holds
under that name and version at the moment of the copy, so a re-upload between the gate
and the copy would land untested bytes on a non-volatile index. Instead every file is
downloaded and checked against the sha256 the gate passed (all of them before any is
uploaded), then uploaded to the target with the records it passed on. A non-volatile
devpi index accepts an identical re-upload and refuses other bytes (409), so concurrent
promotions of one release all succeed with one copy, and a swap is refused. Only one of
them writes the records there: the run the index elects by the order of their claims
(claims.py); the others wait for its promotion and say who did it.

A release already on the target is verified, not waved through: each of its files
must carry, on the target, trusted passing evidence for its own bytes or a recorded
forced promotion. Evidence or a promotion record that an interrupted run did not get
to write is added by the re-run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_kit import claims, console, evidence, gate, results, runner
from ci_kit.config import IndexSettings, QualitySettings
from ci_kit.contract import FileJson, PromoteJson
from ci_kit.dists import read_metadata
from ci_kit.errors import AuthError, CiKitError, GateRefused, IndexUnreachable, Mismatch, NotFound
from ci_kit.index import Index
from ci_kit.listing import Release, ReleaseFile, refuse_clashes, unlike
from ci_kit.release import Spec, target_index


@dataclass
class Promotion:
    spec: Spec
    source: str
    target: str
    changed: bool
    forced: bool = False
    dry_run: bool = False
    already: bool = False  # the target held the release and its evidence there was verified
    gate: list[str] = field(default_factory=list)  # what the gate found, one line per file
    files: list[FileJson] = field(default_factory=list)

    def to_json(self) -> PromoteJson:
        return {"requirement": str(self.spec), "name": self.spec.name, "version": self.spec.version,
                "promoted_to": self.target, "changed": self.changed, "forced": self.forced,
                "dry_run": self.dry_run, "already": self.already, "files": self.files, "gate": self.gate}


def check_acls(index: Index, name: str, trusted: frozenset[str]) -> None:
    """The gate relies on the index's log of who attached what; refuse an index where
    others may upload files or attach results, since they could then race or bury ours."""
    config = index.index_config(name)
    for acl in ("acl_upload", "acl_toxresult_upload"):
        others = sorted(str(x) for x in config.get(acl, []) if x not in trusted)
        if others:
            owner = name.split("/", 1)[0]
            raise GateRefused(f"{name} lets {', '.join(others)} {'upload' if acl == 'acl_upload' else 'attach results'} ({acl}); "
                              "the gate cannot rely on an index others may write",
                              f"`devpi index {name} {acl}={owner}` (ci-kit server start does this for indexes it manages), "
                              "or add trusted users to trusted-uploaders")


def _records(index: Index, rel: Release, trusted: frozenset[str]) -> dict[str, evidence.FileRecords]:
    recs = {f.basename: evidence.read(index, rel, f, trusted) for f in rel.files}
    evidence.warn_ignored(f"promote: {rel.index}", [i for r in recs.values() for i in r.ignored])
    return recs


def _verified_on_target(there: Release, recs: dict[str, evidence.FileRecords], pythons: Sequence[str]) -> tuple[list[str], bool]:
    """(problems, forced): does the target's own evidence show that each of its files
    passed (for the commit its copied build record names), or that it was forced there?"""
    forced = {f.basename for f in there.files if any(p.fields["forced"] for p in recs[f.basename].of("promotion", f.sha256))}
    commits = {r.commit for f in there.files for r in recs[f.basename].of("build", f.sha256)}
    if len(commits) != 1:
        problems = [f"{f.basename} has no build record on {there.index}" for f in there.files
                    if f.basename not in forced and not recs[f.basename].of("build", f.sha256)]
        return problems or [f"the build records on {there.index} name {len(commits)} commits"], bool(forced)
    verdict = gate.judge(there.files, recs, pythons, commits.pop())
    return [p for name, p in verdict.failed.items() if name not in forced], bool(forced)


def verified(index: Index, cfg: IndexSettings, pythons: Sequence[str], spec: Spec) -> str | None:
    """The target index if it already holds the release with every file verified there
    (evidence or a recorded forced promotion, and a promotion record), else None. Lets
    `ci-kit run` skip re-testing what is promoted; promote itself still checks again."""
    target = target_index(cfg, spec.version)
    there = index.release(target, spec.name, spec.version)
    if there is None or not there.files:
        return None
    recs = _records(index, there, cfg.trusted)
    problems, _ = _verified_on_target(there, recs, pythons)
    done = all(recs[f.basename].of("promotion", f.sha256) for f in there.files)
    return target if done and not problems else None


def promote(index: Index, cfg: IndexSettings, pythons: Sequence[str], spec: Spec, *, dry_run: bool = False,
            force: bool = False, quality: QualitySettings | None = None) -> Promotion:
    """Gate the release on unstable (trusted passing evidence for each file on each of
    pythons), then copy exactly those bytes to the target index cfg.promote_to names."""
    source, trusted = cfg.unstable_index, cfg.trusted
    target = target_index(cfg, spec.version)
    rel = index.release(source, spec.name, spec.version)
    there = index.release(target, spec.name, spec.version)
    if (rel is None or not rel.files) and (there is None or not there.files):
        raise NotFound(f"{spec} is not on {source}", "push it first (ci-kit build-and-push)")
    promo = Promotion(spec, source, target, changed=False, forced=force, dry_run=dry_run)
    if rel is None or not rel.files:  # unstable was cleaned: what is on the target must stand on its own
        assert there is not None
        return _already(index, trusted, pythons, promo, there, rel=None, verdict=None)

    promo.files = [{"filename": f.basename, "sha256": f.sha256} for f in rel.files]
    refuse_clashes(there, rel.hashes, source,
                   f"{target} is immutable: build a new version (and if its bytes never passed the gate, an admin must remove them)")
    check_acls(index, source, trusted)
    recs = _records(index, rel, trusted)
    build, problems = evidence.build_of(index, rel, trusted)
    verdict = gate.judge(rel.files, recs, pythons, build.commit) if build else gate.Verdict(other=problems)
    promo.gate = verdict.evidence + verdict.problems
    if there is not None and {f.basename for f in rel.files} <= {f.basename for f in there.files}:
        return _already(index, trusted, pythons, promo, there, rel=rel, verdict=verdict)

    if verdict.problems and not force:
        raise GateRefused(f"{spec} cannot be promoted: " + "; ".join(verdict.problems),
                          f"run `ci-kit test {spec}` (or test-and-promote); --force overrides and is recorded")
    if verdict.problems:
        console.step(f"promote: FORCED past the gate by {results.actor()}: " + "; ".join(verdict.problems))
    q = _quality(index, cfg, quality, rel, verdict, promo=promo, force=force) if quality is not None else None
    for line in verdict.evidence:
        console.step(f"promote: gate: {line}")
    if dry_run:
        console.step(f"promote: dry run: would copy {spec} from {source} to {target} ({len(rel.files)} files)")
        return promo
    _copy(index, rel, target, there)
    forced = bool(verdict.problems) or bool(q and q["problems"])
    by = _record_once(index, trusted, promo, rel, verdict, commit=build.commit if build else "", forced=forced, quality=q)
    if by:
        return _promoted_by(index, trusted, pythons, promo, by)
    promo.changed, promo.forced = True, forced
    console.step(f"promote: {spec} is on {target}")
    return promo


def _quality(index: Index, cfg: IndexSettings, quality: QualitySettings, rel: Release, verdict: gate.Verdict, *,
             promo: Promotion, force: bool) -> dict[str, Any] | None:
    """The quality gate (issue 15, quality/), on a release whose tests passed: refused
    with one line per failed check unless forced; what it found goes into the record."""
    if not verdict.passed:
        return None
    from ci_kit.quality import baseline

    q = baseline.check(index, cfg, quality, rel, verdict.used)
    promo.gate += [f"quality: {line}" for line in q.lines + q.problems]
    if q.problems and not force:
        raise GateRefused(f"{promo.spec} cannot be promoted: quality gate: " + "; ".join(q.problems),
                          "improve the model or the bounds in [tool.ci-kit.quality]; --force overrides and is recorded")
    for line in q.lines:
        console.step(f"promote: quality: {line}")
    if q.problems:
        console.step(f"promote: FORCED past the quality gate by {results.actor()}: " + "; ".join(q.problems))
    return {"passed": q.passed, "lines": q.lines, "problems": q.problems} if (q.lines or q.problems) else None


def _copy(index: Index, rel: Release, target: str, there: Release | None) -> None:
    """Upload the gated bytes: every file downloaded and sha256-checked first, so a file
    swapped on unstable after the gate stops the copy before anything is uploaded."""
    todo = [f for f in rel.files if there is None or there.file(f.basename) is None]
    with runner.temp_dir("ci-kit-promote-") as tmp:  # a killed run's folder is swept by the next
        try:
            local = [(f, index.download(f, Path(tmp))) for f in todo]
        except (NotFound, CiKitError) as exc:
            if isinstance(exc, (IndexUnreachable, AuthError)):
                raise
            raise GateRefused(f"{rel.name}=={rel.version} changed on {rel.index} after the gate: {exc.message}; nothing was copied",
                              "run promote again: the gate judges what is there now") from None
        console.step(f"promote: {rel.name}=={rel.version}: {len(local)} file(s) downloaded, sha256 as gated; uploading to {target}")
        for _f, path in local:
            index.upload(target, path, read_metadata(path))


def _record(index: Index, trusted: frozenset[str], promo: Promotion, rel: Release, verdict: gate.Verdict, *, commit: str,
            forced: bool, quality: dict[str, Any] | None = None, seen: Release | None = None) -> None:
    """Attach to each file on the target the records it passed on (copied byte for byte,
    so their sha256 stays) and a promotion record; skip what is already there. `seen`:
    the target as read after the copy (by the election), else it is read back here."""
    after, wrong = (seen, unlike(seen, rel.hashes, promo.target)) if seen is not None else \
        index.read_back(promo.target, rel.name, rel.version, rel.hashes)
    if after is None or wrong:
        raise Mismatch("after promotion " + "; ".join(wrong),
                       f"{promo.target} holds bytes that did not pass the gate: check who else writes to it")
    have = _records(index, after, trusted)
    at = results.now()  # one promotion, one time: status shows it once
    for f in rel.files:
        t = after.file(f.basename)
        assert t is not None  # read_back found every file
        present = {r.link.sha256 for r in have[f.basename].records} if f.basename in have else set()
        copies = list(verdict.used.get(f.basename, [])) + _build_records(index, rel, f, trusted)
        for r in copies:
            if r.link.sha256 not in present:
                index.attach_result(t, index.read_result_bytes(r.link))
        if not (f.basename in have and have[f.basename].of("promotion", f.sha256)):
            index.attach_result(t, results.promotion_record(filename=f.basename, sha256=f.sha256, source=promo.source,
                                                            target=promo.target, forced=forced, commit=commit, at=at,
                                                            quality=quality))


def _record_once(index: Index, trusted: frozenset[str], promo: Promotion, rel: Release, verdict: gate.Verdict, *,
                 commit: str, forced: bool, quality: dict[str, Any] | None = None) -> str:
    """_record, by the one run the index elects among those promoting this release at
    once (claims.py): "" when this run wrote the records, else who did (its promotion is
    on the target by then). A run that fails while elected gives its claim up."""
    anchor = min(rel.hashes.items())  # every run picks the same file: the first by name
    with claims.Election(index, promo.target, rel.name, rel.version, anchor, trusted=trusted) as election:
        first = election.elect(lambda: _promoted(index, trusted, rel, promo.target))
        if first is None:
            _record(index, trusted, promo, rel, verdict, commit=commit, forced=forced, quality=quality, seen=election.seen)
            return ""
    return first.who


def _promoted(index: Index, trusted: frozenset[str], rel: Release, target: str) -> bool:
    """Whether every file of rel is on target, the same bytes, with a trusted promotion record."""
    there = index.release(target, rel.name, rel.version)
    if there is None:
        return False
    for f in rel.files:
        t = there.file(f.basename)
        if t is None or t.sha256 != f.sha256 or not evidence.read(index, there, t, trusted).of("promotion", f.sha256):
            return False
    return True


def _promoted_by(index: Index, trusted: frozenset[str], pythons: Sequence[str], promo: Promotion, by: str) -> Promotion:
    """Another run was elected and promoted: say so, and verify its promotion like any
    release already on the target (changed stays false)."""
    there = index.release(promo.target, promo.spec.name, promo.spec.version)
    assert there is not None  # the election saw the promotion there
    console.step(f"promote: {promo.spec} already promoted by {by}")
    promo.gate.append(f"already promoted by {by}")
    return _already(index, trusted, pythons, promo, there, rel=None, verdict=None)


def _build_records(index: Index, rel: Release, f: ReleaseFile, trusted: frozenset[str]) -> list[evidence.Record]:
    return evidence.read(index, rel, f, trusted).of("build", f.sha256)[-1:]


def _already(index: Index, trusted: frozenset[str], pythons: Sequence[str], promo: Promotion, there: Release, *,
             rel: Release | None, verdict: gate.Verdict | None) -> Promotion:
    """The target holds the release: a success only if its evidence says so. What an
    interrupted promotion did not record is completed from unstable's evidence."""
    recs = _records(index, there, trusted)
    problems, forced = _verified_on_target(there, recs, pythons)
    missing_promotion = [f for f in there.files if not recs[f.basename].of("promotion", f.sha256)]
    if (problems or missing_promotion) and rel is not None and verdict is not None and (verdict.passed or promo.forced):
        if promo.dry_run:
            promo.gate.append(f"would complete the records on {promo.target}")
            return promo
        console.step(f"promote: {promo.spec} is on {promo.target}; adding the records an interrupted promotion left out")
        by = _record_once(index, trusted, promo, rel, verdict, commit=evidence.commit_of(index, rel, trusted), forced=not verdict.passed)
        if by:
            return _promoted_by(index, trusted, pythons, promo, by)
        promo.forced, promo.changed = not verdict.passed, bool(missing_promotion)  # this run completed the promotion
        return promo
    if problems:
        raise Mismatch(f"{promo.spec} is on {promo.target} without passing evidence: " + "; ".join(problems),
                       "it did not come through the gate: if it was an interrupted --force, run promote --force again to record it")
    console.step(f"promote: {promo.spec} is already on {promo.target}; its evidence there is verified" + (" (FORCED)" if forced else ""))
    promo.gate = promo.gate or ["already promoted, verified on the target"]
    promo.forced, promo.already = forced, True
    return promo
