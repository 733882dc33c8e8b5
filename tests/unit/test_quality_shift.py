"""The response shift measured in the test stage (quality/shift.py) and reused by the gate
only when it was measured against the very baseline, measure and bins the gate has now.

Against FakeIndex: the baseline is promoted to stable with its evaluation, the candidate's
test record stores the shift the test stage measured, and promote either takes it (the
distance is not computed again: measures.shift is made to fail) or computes it afresh.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from ci_kit import promote, push, results
from ci_kit.build import BuiltFile, Manifest
from ci_kit.config import Settings
from ci_kit.errors import GateRefused
from ci_kit.listing import Release
from ci_kit.quality import baseline, gate, measures, record, shift
from ci_kit.quality.gate import Side
from ci_kit.quality.rules import parse
from ci_kit.quality.schema import SchemaError, validate
from ci_kit.release import Spec

from .conftest import COMMIT
from .fakes import FakeIndex, dist_files

REF = "ab" * 32
RULES = {"metrics": {"auc": {"min": 0.5}}, "responses": {"measure": "psi", "max-shift": 0.25, "bins": 10}}
CALM = [i / 200 for i in range(200)]  # the baseline's scores, spread over [0, 1)
SHIFTED = [min(1.0, s / 4 + 0.75) for s in CALM]  # all crowded at the top: a large shift


def _ev(scores: list[float]) -> dict[str, Any]:
    return validate({"schema": 1, "metrics": {"auc": 0.8},
                     "responses": {"kind": "probability", "reference": {"sha256": REF}, "scores": scores}})


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings(**{"python-versions": "3.12", "quality": json.dumps(RULES)})


def _push(fake: FakeIndex, settings: Settings, version: str) -> Release:
    dist = settings.path(settings.build.dist_dir)
    dist.mkdir(exist_ok=True)
    built = []
    for name, data in dist_files("churn-model", version).items():
        (dist / name).write_bytes(data)
        built.append(BuiltFile(name, hashlib.sha256(data).hexdigest(), len(data)))
    push.push(fake, settings.index, Manifest("churn-model", version, COMMIT, built), dist)
    rel = fake.release("ci/unstable", "churn-model", version)
    assert rel is not None
    return rel


def _tested(fake: FakeIndex, rel: Release, evaluation: dict[str, Any], who: str = "ci") -> None:
    for f in rel.files:
        fake.attach_as(who, f, results.test_record(
            filename=f.basename, sha256=f.sha256, commit=COMMIT, python="3.12", python_full="3.12.1", executable="python",
            command=["pytest"], retcode=0, output="", counts={"tests": 3, "failures": 0}, counted=True, junit="",
            metrics=evaluation["metrics"], proof={}, duration=0.1, evaluation=evaluation))


def _test_stage(fake: FakeIndex, settings: Settings, version: str, scores: list[float]) -> dict[str, Any]:
    """What job 2's test stage stores: the evaluation with the shift against the gate's baseline."""
    against = baseline.for_test_stage(fake, settings.index, settings.quality, "churn-model", version)
    assert against is not None
    return shift.measured(against[0], _ev(scores), against[1])


def _promote(fake: FakeIndex, settings: Settings, version: str, *, force: bool = False) -> promote.Promotion:
    return promote.promote(fake, settings.index, settings.test.python_versions, Spec("churn-model", version),
                           quality=settings.quality, force=force)


@pytest.fixture
def with_baseline(fake: FakeIndex, settings: Settings) -> FakeIndex:
    _tested(fake, _push(fake, settings, "1.0.0"), _ev(CALM))
    assert _promote(fake, settings, "1.0.0").target == "ci/stable"
    return fake


def _no_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kw: Any) -> float:
        raise AssertionError("the gate measured the shift although the test stage had")

    monkeypatch.setattr(measures, "shift", fail)


def test_the_gate_takes_the_shift_measured_against_the_same_baseline(with_baseline: FakeIndex, settings: Settings,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ev = _test_stage(with_baseline, settings, "2.0.0", SHIFTED)
    want = measures.shift("psi", ev["responses"], _ev(CALM)["responses"], 10)
    entry = ev["shift"][0]
    assert entry == {"measure": "psi", "bins": 10, "value": want,
                     "baseline": {"index": "ci/stable", "version": "1.0.0", "responses": shift.digest(_ev(CALM)["responses"])}}
    _tested(with_baseline, _push(with_baseline, settings, "2.0.0"), ev)
    calm = _test_stage(with_baseline, settings, "2.0.1", [s * 0.99 for s in CALM])  # a small shift
    _tested(with_baseline, _push(with_baseline, settings, "2.0.1"), calm)
    _no_measuring(monkeypatch)
    with pytest.raises(GateRefused) as info:
        _promote(with_baseline, settings, "2.0.0")
    assert f"responses: psi {want:.4f} between 2.0.0 and baseline 1.0.0 (ci/stable)" in info.value.message
    small = f"responses: psi {calm['shift'][0]['value']:.4f} between 2.0.1 and baseline 1.0.0 (ci/stable)"
    assert any(line.startswith(f"quality: {small}") for line in _promote(with_baseline, settings, "2.0.1").gate)


def test_a_newer_stable_release_since_the_tests_is_measured_afresh(with_baseline: FakeIndex, settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ev = _test_stage(with_baseline, settings, "2.0.0", SHIFTED)  # measured against 1.0.0: a large shift
    _tested(with_baseline, _push(with_baseline, settings, "2.0.0"), ev)
    _tested(with_baseline, _push(with_baseline, settings, "1.5.0"), _ev(SHIFTED))  # now stable has scores like 2.0.0's
    _promote(with_baseline, settings, "1.5.0", force=True)  # far from 1.0.0, forced past the gate
    calls: list[str] = []
    real = measures.shift
    monkeypatch.setattr(measures, "shift", lambda *a: calls.append(a[0]) or real(*a))
    p = _promote(with_baseline, settings, "2.0.0")  # against 1.5.0 the shift is nil: promoted
    assert calls == ["psi"] and p.target == "ci/stable"
    assert any("psi 0.0000 between 2.0.0 and baseline 1.5.0 (ci/stable)" in line for line in p.gate)


@pytest.mark.parametrize("change", ["responses", "version", "index", "measure", "bins"])
def test_a_shift_measured_against_anything_else_is_not_taken(change: str) -> None:
    rules = parse(RULES)
    base = Side("1.0.0", "ci/stable", _ev(CALM))
    cand = shift.measured(rules, _ev(SHIFTED), base)
    forged = {**cand, "shift": [{**cand["shift"][0], "value": 0.0}]}  # would pass if it were taken
    now = {"responses": Side("1.0.0", "ci/stable", _ev([s * 0.5 for s in CALM])), "version": Side("1.0.1", "ci/stable", _ev(CALM)),
           "index": Side("1.0.0", "ci/testing", _ev(CALM))}.get(change, base)
    other = parse({**RULES, "responses": {**RULES["responses"], **({"measure": "wasserstein"} if change == "measure" else {}),
                                          **({"bins": 5} if change == "bins" else {})}})
    assert shift.stored(other, forged, now) is None
    assert shift.stored(rules, forged, base) == 0.0


def test_the_gate_uses_the_stored_value_only_for_its_own_baseline() -> None:
    rules = parse(RULES)
    base = Side("1.0.0", "ci/stable", _ev(CALM))
    cand = shift.measured(rules, _ev(SHIFTED), base)
    lying = {**cand, "shift": [{**cand["shift"][0], "value": 0.01}]}
    assert gate.judge(rules, [Side("2.0.0", "ci/unstable", lying)], base).passed  # taken: it is the trusted tester's word
    moved = Side("1.0.1", "ci/stable", _ev(CALM))
    verdict = gate.judge(rules, [Side("2.0.0", "ci/unstable", lying)], moved)  # another baseline: measured, refused
    assert not verdict.passed and "between 2.0.0 and baseline 1.0.1 (ci/stable)" in verdict.problems[0]


def test_a_forged_shift_in_an_untrusted_record_is_ignored(with_baseline: FakeIndex, settings: Settings) -> None:
    ev = _test_stage(with_baseline, settings, "2.0.0", SHIFTED)
    rel = _push(with_baseline, settings, "2.0.0")
    _tested(with_baseline, rel, {k: v for k, v in ev.items() if k != "shift"})  # the trusted tester's run
    _tested(with_baseline, rel, {**ev, "shift": [{**ev["shift"][0], "value": 0.0}]}, who="mallory")  # same record, nil shift
    with pytest.raises(GateRefused, match=r"quality gate: responses: psi \d+\.\d+ between 2.0.0 and baseline 1.0.0"):
        _promote(with_baseline, settings, "2.0.0")


def test_the_product_cannot_write_the_shift_itself(tmp_path: Any) -> None:
    rules = parse(RULES)
    cand = shift.measured(rules, _ev(SHIFTED), Side("1.0.0", "ci/stable", _ev(CALM)))
    (tmp_path / "metrics.json").write_text(json.dumps(cand))
    evaluation, problem = record.read(tmp_path / "metrics.json", tmp_path)
    assert evaluation is None
    assert problem == "shift is written by ci-kit's test stage, not by the product: remove it from the file"


@pytest.mark.parametrize("bad, field", [
    ({"value": -1.0}, "shift[0].value"), ({"value": float("nan")}, "shift[0].value"), ({"measure": "chi2"}, "shift[0].measure"),
    ({"bins": 1}, "shift[0].bins"), ({"baseline": {"index": "ci/stable", "version": "1.0.0"}}, "shift[0].baseline"),
    ({"extra": 1}, "shift[0]"),
])
def test_a_stored_shift_is_checked_strictly(bad: dict[str, Any], field: str) -> None:
    cand = shift.measured(parse(RULES), _ev(SHIFTED), Side("1.0.0", "ci/stable", _ev(CALM)))
    assert validate(cand, stored=True) == cand
    with pytest.raises(SchemaError) as info:
        validate({**cand, "shift": [{**cand["shift"][0], **bad}]}, stored=True)
    assert info.value.field == field


@pytest.mark.parametrize("entry", ["psi", None, {"measure": "psi"}, {"value": "0.0"}, {"value": True}])
def test_a_malformed_stored_shift_is_no_match(entry: Any) -> None:
    """`report` hands the gate records as status read them: a broken entry is measured afresh, not a crash."""
    rules = parse(RULES)
    base = Side("1.0.0", "ci/stable", _ev(CALM))
    good = shift.measured(rules, _ev(SHIFTED), base)["shift"][0]
    broken = {**good, **entry} if isinstance(entry, dict) and "value" in entry else entry
    assert shift.stored(rules, {**_ev(SHIFTED), "shift": [broken]}, base) is None
    assert shift.stored(rules, {**_ev(SHIFTED), "shift": [broken, good]}, base) == good["value"]
