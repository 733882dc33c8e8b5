"""The quality gate's rule, as a function of two evaluation records: no I/O here.

A candidate passes when each configured check holds: absolute bounds per metric, no
regression against the baseline beyond the allowed drop, a bounded shift of the response
distribution on the same reference set, a bounded undecided share, and input profiles
without new categories or a missing-value jump. Each failure is one line naming the
measure, the candidate's value, the baseline's version and value, and the bound. Without
a baseline (a first release) the relative checks pass, and the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ci_kit.quality import measures, shift
from ci_kit.quality.rules import MetricRule, Rules


@dataclass(frozen=True)
class Side:
    """One release's evaluation record, where it was read."""

    version: str
    index: str
    evaluation: dict[str, Any] | None
    label: str = ""  # which run recorded it, when a release has several distinct records

    @property
    def where(self) -> str:
        return f"{self.version} ({self.index})"


@dataclass
class QualityVerdict:
    lines: list[str] = field(default_factory=list)  # what was compared, for the log and the promotion record
    problems: list[str] = field(default_factory=list)  # why not, one line each

    @property
    def passed(self) -> bool:
        return not self.problems


def _g(v: float) -> str:
    return f"{v:.4g}"


def judge(rules: Rules, cands: list[Side], base: Side | None) -> QualityVerdict:
    v = QualityVerdict()
    if not cands or all(c.evaluation is None for c in cands):
        if rules.active:
            v.problems.append(f"{cands[0].version if cands else 'the candidate'} has no evaluation record "
                              "(the tests or evaluate-command did not write $CI_KIT_METRICS_FILE)")
        return v
    if base is None or base.evaluation is None:
        v.lines.append("no baseline" + (f" with an evaluation record ({base.where})" if base else "")
                       + ": first release, relative checks pass")
        base = None
    else:
        v.lines.append(f"baseline {base.where}")
    for cand in (c for c in cands if c.evaluation is not None):
        _metrics(rules, cand, base, v)
        _responses(rules, cand, base, v)
        _inputs(rules, cand, base, v)
    return v


def _bound_text(m: MetricRule, b: float) -> tuple[float, str]:
    """The lowest (or highest) value the baseline's b allows, and how it was set; only
    for a rule with max-drop or max-drop-relative (the caller checks)."""
    sign = -1 if m.higher_is_better else 1
    bounds = []
    if m.max_drop is not None:
        bounds.append((b + sign * m.max_drop, f"allowed {'drop' if m.higher_is_better else 'rise'} {_g(m.max_drop)}"))
    if m.max_drop_relative is not None:
        bounds.append((b + sign * abs(b) * m.max_drop_relative,
                       f"allowed {'drop' if m.higher_is_better else 'rise'} {m.max_drop_relative:.1%}"))
    if not bounds:
        raise ValueError(f"metric {m.name} has no max-drop or max-drop-relative: there is no bound to compute")
    return (max if m.higher_is_better else min)(bounds, key=lambda t: t[0])


def _metrics(rules: Rules, cand: Side, base: Side | None, v: QualityVerdict) -> None:
    have = cand.evaluation["metrics"] if cand.evaluation else {}
    old = base.evaluation["metrics"] if base and base.evaluation else {}
    on = f"{cand.version}{f' ({cand.label})' if cand.label else ''}"
    for m in rules.metrics:
        if m.name not in have:
            v.problems.append(f"metric {m.name} is not in the evaluation record of {on}")
            continue
        x = have[m.name]
        vs = f"; baseline {base.where} has {_g(old[m.name])}" if base and m.name in old else ""
        if m.min is not None and x < m.min:
            v.problems.append(f"metric {m.name} is {_g(x)} on {on}, below the minimum {_g(m.min)}{vs}")
        if m.max is not None and x > m.max:
            v.problems.append(f"metric {m.name} is {_g(x)} on {on}, above the maximum {_g(m.max)}{vs}")
        if base is None or (m.max_drop is None and m.max_drop_relative is None):
            continue
        if m.name not in old:
            v.lines.append(f"metric {m.name}: baseline {base.where} did not record it, no regression check")
            continue
        bound, how = _bound_text(m, old[m.name])
        worse = x < bound if m.higher_is_better else x > bound
        if worse:
            v.problems.append(f"metric {m.name} is {_g(x)} on {on}; baseline {base.where} has {_g(old[m.name])}; "
                              f"{how} (bound {_g(bound)})")
        else:
            v.lines.append(f"metric {m.name} {_g(x)} vs baseline {_g(old[m.name])} (bound {_g(bound)})")


def _responses(rules: Rules, cand: Side, base: Side | None, v: QualityVerdict) -> None:
    resp = cand.evaluation.get("responses") if cand.evaluation else None
    if resp is None:
        if rules.max_shift is not None or rules.max_undecided is not None:
            v.problems.append(f"{cand.version} recorded no responses, but the quality gate bounds them")
        return
    if rules.max_undecided is not None and resp["kind"] == "probability":
        share = measures.undecided(resp, rules.undecided)
        lo, hi = rules.undecided
        old = base.evaluation.get("responses") if base and base.evaluation else None
        vs = f"; baseline {base.where} has {measures.undecided(old, rules.undecided):.1%}" if base and old else ""
        if share > rules.max_undecided:
            v.problems.append(f"responses: {share:.1%} of {cand.version}'s scores are undecided (in [{lo:g}, {hi:g}]){vs}; "
                              f"bound {rules.max_undecided:.1%}")
    old = base.evaluation.get("responses") if base and base.evaluation else None
    if rules.max_shift is None or base is None or old is None:
        return
    if old["reference"]["sha256"] != resp["reference"]["sha256"]:
        v.lines.append(f"responses: reference set changed since {base.where} "
                       f"({old['reference']['sha256'][:12]}… -> {resp['reference']['sha256'][:12]}…): shift not compared")
        return
    d = shift.stored(rules, cand.evaluation or {}, base)  # measured by the test stage against this very baseline
    if d is None:
        try:
            d = measures.shift(rules.measure, resp, old, rules.bins)
        except measures.NotComparable as exc:
            v.problems.append(f"responses: {exc}")
            return
    text = (f"responses: {rules.measure} {d:.4f} between {cand.version} and baseline {base.where} "
            f"on reference set {resp['reference']['sha256'][:12]}…")
    if d > rules.max_shift:
        v.problems.append(f"{text}; bound {_g(rules.max_shift)}")
    else:
        v.lines.append(f"{text} (bound {_g(rules.max_shift)})")


def _inputs(rules: Rules, cand: Side, base: Side | None, v: QualityVerdict) -> None:
    now = (cand.evaluation or {}).get("inputs", {}).get("columns")
    old = (base.evaluation or {}).get("inputs", {}).get("columns") if base else None
    if not (rules.refuse_new_categories or rules.max_missing_increase is not None) or base is None:
        return
    if not now or not old:
        v.lines.append("inputs: no input profile on both sides, not compared")
        return
    for col, p in now.items():
        q = old.get(col)
        if q is None:
            v.lines.append(f"inputs: column {col} is new in {cand.version}")
            continue
        new = sorted(set(p.get("categories") or []) - set(q.get("categories") or []))
        if rules.refuse_new_categories and new and q.get("categories") is not None:
            shown = ", ".join(repr(c) for c in new[:5]) + (f" and {len(new) - 5} more" if len(new) > 5 else "")
            v.problems.append(f"inputs: column {col} has new categories {shown} in {cand.version}, "
                              f"not in baseline {base.where}; new-categories = refuse")
        jump = p["missing"] - q["missing"]
        if rules.max_missing_increase is not None and jump > rules.max_missing_increase:
            v.problems.append(f"inputs: column {col} missing rate {p['missing']:.1%} in {cand.version}; baseline {base.where} "
                              f"has {q['missing']:.1%}; allowed increase {rules.max_missing_increase:.1%}")
