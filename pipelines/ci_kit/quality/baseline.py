"""The quality gate's reads: the candidate's evaluation records (from the passing test
records the test gate relied on) and the baseline's (the newest other release on the
baseline index, stable unless configured). Nothing else is read, so the gate costs the
baseline index's simple page, the newest release and its records, however many releases
the index holds. The test stage makes the same lookup (for_test_stage) to measure the
response shift ahead of the gate (shift.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ci_kit import console, evidence
from ci_kit.quality.gate import QualityVerdict, Side, judge
from ci_kit.quality.rules import Rules, parse
from ci_kit.quality.schema import SchemaError, validate

if TYPE_CHECKING:
    from ci_kit.config import IndexSettings, QualitySettings
    from ci_kit.index import Index
    from ci_kit.listing import Release


def version_key(v: str) -> Any:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


def baseline_index(cfg: IndexSettings, rules: Rules) -> str | None:
    return {"stable": cfg.stable_index, "testing": cfg.testing_index, "none": None}.get(rules.baseline, rules.baseline)


def sides(version: str, index: str, records: list[evidence.Record]) -> list[Side]:
    """The distinct, well-formed evaluations among a release's test records (a wheel and
    its sdist usually agree; runs that disagree are judged each, labelled by file and Python)."""
    found: dict[str, Side] = {}
    for r in records:
        ev = r.fields.get("evaluation")
        if ev is None:
            continue
        try:
            ev = validate(ev, stored=True)
        except SchemaError as exc:
            console.step(f"quality: {version} on {index}: evaluation of {r.fields['filename']} ignored ({exc})")
            continue
        key = json.dumps({k: x for k, x in ev.items() if k != "shift"}, sort_keys=True)  # the shifts measured may differ
        side = found.setdefault(key, Side(version, index, ev, f"{r.fields['filename']}, Python {r.python}"))
        if side.evaluation is not None and side.evaluation is not ev and ev.get("shift"):
            side.evaluation["shift"] = side.evaluation.get("shift", []) + ev["shift"]  # runs that agree: either's shift serves
    out = list(found.values())
    if len(out) == 1:
        out = [Side(version, index, out[0].evaluation)]
    return out


def release_sides(index: Index, rel: Release, trusted: frozenset[str]) -> list[Side]:
    """A release's evaluations from its trusted, passing test records on its index."""
    recs = [r for f in rel.files for r in evidence.read(index, rel, f, trusted).of("test", f.sha256) if r.passed]
    return sides(rel.version, rel.index, recs)


def _newest(index: Index, where: str, name: str, version: str) -> Release | None:
    """The newest release with files on `where` other than the candidate: its version from
    the simple page, then that one release (two small reads, however many releases the
    index holds); the whole project listing only if the simple page cannot say."""
    listed = index.file_versions(where, name)
    if listed is not None:
        others = [v for v in listed if version_key(v) != version_key(version)]
        rel = index.release(where, name, max(others, key=version_key)) if others else None
        if not others or (rel is not None and rel.files):
            return rel
    rels = {v: r for v, r in index.releases(where, name).items() if version_key(v) != version_key(version) and r.files}
    return rels[max(rels, key=version_key)] if rels else None


def find_baseline(cfg: IndexSettings, rules: Rules, index: Index, name: str, version: str) -> Side | None:
    """The newest release on the baseline index other than the candidate, with its evaluation."""
    where = baseline_index(cfg, rules)
    if where is None:
        return None
    newest = _newest(index, where, name, version)
    if newest is None:
        return None
    found = release_sides(index, newest, cfg.trusted)
    return found[0] if found else Side(newest.version, where, None)


def for_test_stage(index: Index, cfg: IndexSettings, quality: QualitySettings | None, name: str,
                   version: str) -> tuple[Rules, Side] | None:
    """(rules, baseline) for the test stage to measure the response shift against
    (quality/shift.py), or None when no shift is bounded or there is no baseline with
    responses. A read that fails only costs the shortcut: the gate measures at promote."""
    from ci_kit.errors import CiKitError

    rules = parse(quality.rules) if quality is not None else None
    if rules is None or rules.max_shift is None:
        return None
    try:
        base = find_baseline(cfg, rules, index, name, version)
    except CiKitError as exc:
        console.step(f"test: quality: baseline not read ({exc.message}); the gate measures the shift at promote")
        return None
    if base is None or not (base.evaluation or {}).get("responses"):
        return None
    console.step(f"test: quality: the response shift is measured against baseline {base.where}, for the gate")
    return rules, base


def check(index: Index, cfg: IndexSettings, quality: QualitySettings, rel: Release,
          used: dict[str, list[evidence.Record]]) -> QualityVerdict:
    """The quality verdict on a candidate whose test gate passed."""
    rules = parse(quality.rules)
    cands = sides(rel.version, rel.index, [r for recs in used.values() for r in recs])
    if not cands and not rules.active:
        return QualityVerdict()
    base = find_baseline(cfg, rules, index, rel.name, rel.version) if cands else None
    if base is None and rules.baseline != "none" and cands:
        verdict = judge(rules, cands, None)
        verdict.lines[0] = f"no baseline on {baseline_index(cfg, rules)}: first release, relative checks pass"
        return verdict
    return judge(rules, cands, base)
