"""The record reader and the gate's rule without a server: whatever JSON anyone attaches,
reading it never crashes, and only well-typed records of a passing run open the gate."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ci_kit import evidence, gate, results
from ci_kit.listing import ReleaseFile, ResultLink

SHA = "a" * 64
COMMIT = "c" * 40
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=20)


def _good(**override: object) -> dict:
    rec = results.test_record(filename="x-1-py3-none-any.whl", sha256=SHA, commit=COMMIT, python="3.11", python_full="3.11.7",
                              executable="python", command=["pytest"], retcode=0, output="", counts={"tests": 3},
                              counted=True, junit="", metrics={}, proof={}, duration=0.1)
    rec["ci_kit"].update(override)
    return rec


def _judge(ck: dict) -> gate.Verdict:
    f = ReleaseFile("x-1-py3-none-any.whl", "u", SHA)
    link = ResultLink("l", "u", "ci")
    recs = evidence.FileRecords()
    if evidence.check({"ci_kit": ck}) is None:
        recs.records.append(evidence.Record(ck["kind"], ck["sha256"], "ci", ck, link))
    return gate.judge([f], {f.basename: recs}, ["3.11"], COMMIT)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_is_read_without_a_crash(value):
    assert evidence.check(value) is None or isinstance(evidence.check(value), str)


# 200 examples: each of the 13 fields gets a few hundred values across runs; 400 took
# over the fast layer's 5 s on a busy machine (each example runs the whole gate)
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["passed", "tests", "failures", "errors", "counted", "kind", "sha256", "python",
                                        "schema", "commit", "filename", "at", "skipped"]), json_values, max_size=5))
def test_a_mutated_record_opens_the_gate_only_if_it_still_says_a_real_pass(mutation):
    ck = {**_good()["ci_kit"], **mutation}
    verdict = _judge(ck)
    if verdict.passed:
        assert ck["passed"] is True and ck["kind"] == "test" and ck["sha256"] == SHA and ck["commit"] == COMMIT
        assert ck["failures"] == 0 and ck["errors"] == 0 and (ck["tests"] > 0 or ck["counted"] is False)


def test_strings_and_zero_tests_are_not_passes():
    assert evidence.check(_good(passed="false")) == "ci_kit.passed is not a boolean"
    assert evidence.check(_good(tests="3")) == "ci_kit.tests is not a count"
    assert not _judge(_good(tests=0)["ci_kit"]).passed
    assert "ran no tests" in _judge(_good(tests=0)["ci_kit"]).problems[0]
    assert _judge(_good()["ci_kit"]).passed
    assert _judge(_good(tests=0, counted=False)["ci_kit"]).passed  # require-junit = false, said in the record


def test_devpi_test_records_are_not_evidence():
    tox_shape = {"installpkg": {"sha256": SHA}, "testenvs": {"py": {"test": [{"retcode": 0}]}}}
    assert "no ci_kit fields" in evidence.check(tox_shape)
    assert "no ci_kit fields" in evidence.check(json.loads(json.dumps(tox_shape)))
