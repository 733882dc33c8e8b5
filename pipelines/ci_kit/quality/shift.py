"""The response shift measured in job 2's test stage, and when the gate may reuse it.

Why measure it there: the distances need numpy and scipy, whose import costs about 0.5 s
of CPU (scipy.special, for PSI) or 1.5 s (scipy.stats, for ks and wasserstein), while
the quality gate may add at most 0.2 s to `promote` (issue 15). The test stage spends
minutes installing and testing anyway, so once a run's evaluation record is checked it
looks up the baseline the gate would use (baseline.find_baseline) and stores, inside
that record, the shift per configured rule with what it was measured against: the
baseline's index and version, the sha256 of the baseline's responses as canonical JSON,
the measure and the bins. The gate takes a stored value only when all of these match
the baseline it finds at promote time; otherwise (a newer stable release since the
tests, other responses, another measure or bins) it computes the shift as before, slowly
but correctly. So a promote right after its test stage imports neither numpy nor scipy.

Why a stored value can be trusted: it sits in the same trusted tester's test record as
the metrics the gate already relies on (an untrusted uploader's record is never read),
and the product's own file may not carry it (schema.validate refuses `shift` there).

The other way, importing scipy in a thread while promote waits on the index, was
rejected: the import is CPU, not waiting, and longer than all of promote's index reads
(0.5 s of CPU, where the whole promote with 1,000 releases takes 0.33 s wall), so it
could not hide even PSI's import, let alone scipy.stats' 1.5 s. Measured
(benchmarks/RESULTS.md, row 10): the gate adds 0.06 s to promote with a stored shift,
0.35 s when it measures.

Pure: no I/O here (the baseline is read by baseline.py, the record by record.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from ci_kit.quality import measures

if TYPE_CHECKING:
    from ci_kit.quality.gate import Side
    from ci_kit.quality.rules import Rules


def digest(responses: dict[str, Any]) -> str:
    """The sha256 of responses as canonical JSON (sorted keys, no spaces): what the
    stored shift was measured against, checked again at promote."""
    text = json.dumps(responses, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _against(rules: Rules, base: Side) -> dict[str, Any] | None:
    """What a shift under these rules against this baseline is keyed by, or None if
    there is nothing to measure (no shift bound, no baseline responses)."""
    old = (base.evaluation or {}).get("responses")
    if rules.max_shift is None or old is None:
        return None
    return {"measure": rules.measure, "bins": rules.bins,
            "baseline": {"index": base.index, "version": base.version, "responses": digest(old)}}


def measured(rules: Rules, evaluation: dict[str, Any], base: Side | None) -> dict[str, Any]:
    """The evaluation with the shift against base stored in it (test stage). Unchanged
    when there is nothing the gate would compare: no bound, no baseline or no responses
    on a side, another reference set (the gate says so without measuring), or responses
    the measure cannot compare (the gate says why)."""
    key = _against(rules, base) if base is not None else None
    resp = evaluation.get("responses")
    if key is None or resp is None or base is None or base.evaluation is None:
        return evaluation
    old = base.evaluation["responses"]
    if old["reference"]["sha256"] != resp["reference"]["sha256"]:
        return evaluation
    try:
        value = measures.shift(rules.measure, resp, old, rules.bins)
    except measures.NotComparable:
        return evaluation
    return {**evaluation, "shift": [{**key, "value": value}]}


def stored(rules: Rules, evaluation: dict[str, Any], base: Side) -> float | None:
    """The stored shift measured under these rules against exactly this baseline, else None."""
    key = _against(rules, base)
    if key is None:
        return None
    for entry in evaluation.get("shift") or []:  # report passes records unchecked: a malformed entry is no match
        if isinstance(entry, dict) and {k: v for k, v in entry.items() if k != "value"} == key \
                and isinstance(entry.get("value"), (int, float)) and not isinstance(entry["value"], bool):
            return float(entry["value"])
    return None
