"""The evaluation record's check, the input profile and the quality rules without a
server: whatever JSON a product writes, the check answers with one field-naming line,
never a crash; the distances are scipy's."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_kit.errors import CiKitError
from ci_kit.quality import gate, measures, profile, rules, schema

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=20)
REF = {"sha256": "a" * 64}


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"schema": st.just(1)}, optional={
    "metrics": json_values, "responses": json_values, "inputs": json_values})))
def test_any_json_is_checked_without_a_crash(value):
    try:
        schema.validate(value)
    except schema.SchemaError as exc:
        assert str(exc) and "\n" not in str(exc)  # noqa: PT017 - valid JSON raises nothing: pytest.raises does not fit


@pytest.mark.parametrize("record, message", [
    ({"schema": 1, "metrics": {"auc": "high"}}, "metrics.auc must be a finite number, got 'high'"),
    ({"schema": 1, "metrics": {"auc": float("nan")}}, "metrics.auc must be a finite number, got nan"),
    ({"schema": 2, "metrics": {}}, "schema must be 1, got 2"),
    ({"schema": 1, "metrics": {}, "extra": 1}, "extra is not a field of the schema"),
    ({"schema": 1, "metrics": {}, "responses": {"scores": [0.1]}}, "responses.reference.sha256 must be the sha256"),
    ({"schema": 1, "metrics": {}, "responses": {"reference": REF, "scores": [0.1, "x"]}},
     "responses.scores[1] must be a finite number, got 'x'"),
    ({"schema": 1, "metrics": {}, "responses": {"reference": REF, "scores": [1.5]}}, "must lie in [0, 1]"),
    ({"schema": 1, "metrics": {}, "responses": {"reference": REF, "histogram": {"edges": [0, 1], "counts": [1, 2]}}},
     "responses.histogram.counts must be a list of 1 counts"),
    ({"schema": 1, "metrics": {}, "inputs": {"columns": {"c": {"missing": 2}}}},
     "inputs.columns.c.missing must be a rate between 0 and 1, got 2"),
])
def test_a_malformed_record_names_the_field(record, message):
    with pytest.raises(schema.SchemaError) as exc:
        schema.validate(record)
    assert message in str(exc.value)


def test_the_flat_form_is_metrics_only():
    assert schema.validate({"acc": 0.8, "rows": 80}) == {"schema": 1, "metrics": {"acc": 0.8, "rows": 80}}


def test_profile_of_a_csv_and_paths_that_leave_the_repository(tmp_path):
    (tmp_path / "d.csv").write_text("x,c\n1,a\n2,\n3,b\nNA,b\n")
    p = profile.profile_csv(profile.inside(tmp_path, "d.csv"), "d.csv")
    assert p["rows"] == 4 and p["columns"]["c"] == {"missing": 0.25, "categories": ["a", "b"]}
    assert p["columns"]["x"]["missing"] == 0.25 and p["columns"]["x"]["quantiles"]["p50"] == 2
    for name in ("../d.csv", "/etc/passwd", "missing.csv"):
        with pytest.raises(schema.SchemaError, match=r"inputs\.csv"):
            profile.inside(tmp_path / "sub" if name == "../d.csv" else tmp_path, name)


_SCORES = {"kind": "probability", "reference": REF, "scores": [i / 100 for i in range(100)]}
_SHIFTED = {**_SCORES, "scores": [min(1, i / 100 + 0.3) for i in range(100)]}
_HISTOGRAM = {"kind": "probability", "reference": REF, "histogram": {"edges": [0, 0.5, 1], "counts": [1, 1]}}


def test_psi_is_zero_for_identical_responses_and_grows_with_a_shift():
    a, b, h = _SCORES, _SHIFTED, _HISTOGRAM
    assert measures.shift("psi", a, a) == pytest.approx(0, abs=1e-9)
    assert measures.shift("psi", b, a) > 0.1
    assert measures.undecided(h, (0.4, 0.6)) == 0 and measures.undecided(b, (0.4, 0.6)) == pytest.approx(0.21)


# slow: ks and wasserstein import scipy.stats, ~1.5 s of CPU alone and over 10 s on a busy machine
@pytest.mark.slow
@pytest.mark.parametrize("measure", [m for m in rules.MEASURES if m != "psi"])
def test_scipy_stats_distances_are_zero_for_identical_responses_and_grow_with_a_shift(measure):
    a, b = _SCORES, _SHIFTED
    assert measures.shift(measure, a, a) == pytest.approx(0, abs=1e-9)
    assert measures.shift(measure, b, a) > 0.1
    if measure == "ks":
        with pytest.raises(measures.NotComparable, match="ks needs raw scores"):
            measures.shift("ks", _HISTOGRAM, a)


def test_relative_drop_and_lower_is_better():
    r = rules.parse({"metrics": {"loss": {"max-drop-relative": 0.1, "higher-is-better": False}}})
    side = lambda v, x: gate.Side(v, "ci/stable", {"schema": 1, "metrics": {"loss": x}})  # noqa: E731
    assert gate.judge(r, [side("2", 0.54)], side("1", 0.5)).passed
    v = gate.judge(r, [side("2", 0.56)], side("1", 0.5))
    assert v.problems == ["metric loss is 0.56 on 2; baseline 1 (ci/stable) has 0.5; allowed rise 10.0% (bound 0.55)"]


def test_a_configured_gate_refuses_a_release_without_a_record():
    v = gate.judge(rules.parse({"metrics": {"auc": {"min": 0.5}}}), [gate.Side("2", "ci/unstable", None)], None)
    assert v.problems == ["2 has no evaluation record (the tests or evaluate-command did not write $CI_KIT_METRICS_FILE)"]
    assert gate.judge(rules.parse({}), [gate.Side("2", "ci/unstable", None)], None).passed


@pytest.mark.parametrize("table, message", [
    ({"metrics": {"auc": {"min": "0.7"}}}, "a number at quality.metrics.auc.min"),
    ({"responses": {"measure": "chi2"}}, "one of psi, ks, wasserstein at quality.responses.measure"),
    ({"responses": {"undecided": [0.6, 0.4]}}, "two numbers [low, high]"),
    ({"inputs": {"new-categories": "yes"}}, "allow or refuse"),
    ({"baseline": "prod"}, "quality.baseline"),
    ({"thresholds": {}}, "(quality.thresholds is not one)"),
])
def test_bad_rules_say_where(table, message):
    assert message in rules.problem(table)


def test_missing_scipy_is_a_usage_error(monkeypatch):
    import builtins

    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda n, *a, **k: (_ for _ in ()).throw(ImportError(n))
                        if n.startswith("scipy") else real(n, *a, **k))
    with pytest.raises(CiKitError, match="need scipy") as exc:
        measures.shift("psi", {"scores": [0.1]}, {"scores": [0.2]})
    assert exc.value.exit_code == 2
