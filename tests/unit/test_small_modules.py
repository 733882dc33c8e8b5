"""Release specs, exit codes, JUnit reading and the job-summary Markdown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_kit import errors, junit, release, summary
from ci_kit.errors import UsageError
from ci_kit.testreport import RunReport, RunResult

# -- release specs ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, name, version", [
    ("churn-model==1.2.0", "churn-model", "1.2.0"),
    ("Churn_Model==1.2", "churn-model", "1.2"),
    ("churn.model == 1.0.0.post1", "churn-model", "1.0.0.post1"),
    ("x==1.0.dev3+g1234abc", "x", "1.0.dev3+g1234abc"),
    ("x==01.0", "x", "1.0"),  # normalised, as the index lists it
])
def test_a_spec_is_one_exact_release(text: str, name: str, version: str) -> None:
    spec = release.parse(text)
    assert (spec.name, spec.version) == (name, version) and str(spec) == f"{name}=={version}"


@pytest.mark.parametrize("text, says", [
    ("churn-model", "is not NAME==VERSION"),
    ("churn-model>=1.0", "is not NAME==VERSION"),
    ("churn-model==1.*", "is not NAME==VERSION"),
    ("churn-model==1.0,==1.0", "is not NAME==VERSION"),
    ("churn-model[extra]==1.0", "is not NAME==VERSION"),
    ("churn-model==1.0; python_version>'3'", "is not NAME==VERSION"),
    ("churn model==1", "malformed requirement"),
    ("==1.0", "malformed requirement"),
    ("x===banana", "is not NAME==VERSION"),
])
def test_anything_else_is_a_usage_error_with_an_example(text: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        release.parse(text)
    assert says in info.value.message and "e.g. churn-model==1.2.0" in info.value.hint


@pytest.mark.parametrize("version, final", [("1.0", True), ("1.0.post1", True), ("1.0rc1", False), ("1.0.dev1", False),
                                            ("1.0+local", False)])
def test_final_versions_go_to_stable_and_the_rest_to_testing(make_settings, version: str, final: bool) -> None:
    assert release.is_final(version) is final
    assert release.target_index(make_settings().index, version) == ("ci/stable" if final else "ci/testing")
    assert release.target_index(make_settings(**{"promote-to": "testing"}).index, version) == "ci/testing"
    assert release.target_index(make_settings(**{"promote-to": "stable"}).index, version) == "ci/stable"


# -- errors and exit codes ------------------------------------------------------------------------

def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_error_class_has_a_documented_exit_code_of_its_own() -> None:
    classes = [c for c in _subclasses(errors.CiKitError) if c.__module__ == "ci_kit.errors"]
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes), codes
    assert set(codes) | {0, 1, 130, 143} == set(errors.EXIT_CODES)  # 0 success, 1 a bug, 130/143 signals


def test_an_error_carries_its_message_and_hint() -> None:
    exc = errors.GateRefused("x cannot be promoted", "run ci-kit test")
    assert (str(exc), exc.message, exc.hint, exc.exit_code) == ("x cannot be promoted", "x cannot be promoted", "run ci-kit test", 10)


def test_interrupted_is_not_an_exception_and_exits_128_plus_the_signal() -> None:
    import signal

    for signum, code, name in ((signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")):
        exc = errors.Interrupted(signum)
        assert not isinstance(exc, Exception) and exc.exit_code == code and str(exc) == name


# -- JUnit ---------------------------------------------------------------------------------------

SUITES = """<?xml version="1.0" encoding="utf-8"?><testsuites>
<testsuite name="a" tests="3" failures="1" errors="0" skipped="1">
  <testcase classname="tests.test_a" name="test_ok"/>
  <testcase classname="tests.test_a" name="test_bad"><failure message="boom">x</failure></testcase>
  <testcase classname="tests.test_a" name="test_skip"><skipped/></testcase>
</testsuite>
<testsuite name="b" tests="2" failures="0" errors="1"><testcase name="test_err"><error/></testcase></testsuite>
</testsuites>"""


def test_counts_add_up_every_suite_and_failures_are_named(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(SUITES)
    assert junit.counts(path) == {"tests": 5, "failures": 1, "errors": 1, "skipped": 1}
    assert junit.failures(path) == ["tests.test_a::test_bad", "test_err"]


def test_colour_codes_and_control_characters_do_not_hide_the_counts(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text('<testsuite tests="2" failures="0" errors="0" skipped="0">'
                    '<testcase name="t"><system-out>\x1b[31mred\x1b[0m \x00\x08</system-out></testcase></testsuite>')
    assert junit.counts(path) == {"tests": 2, "failures": 0, "errors": 0, "skipped": 0}


@pytest.mark.parametrize("text", ["", "not xml", "<html/>", '<testsuite tests="many"/>'])
def test_what_is_not_junit_has_no_counts(tmp_path: Path, text: str) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(text)
    assert junit.counts(path) is None and junit.failures(path) == []
    assert junit.counts(tmp_path / "missing.xml") is None


def test_the_stand_in_file_counts_one_case_and_masks_the_output(tmp_path: Path) -> None:
    from ci_kit import console

    console.add_secret("Stand-In-Secret-1")
    ok, bad = tmp_path / "ok.xml", tmp_path / "bad.xml"
    junit.write_stand_in(ok, "run", 0, "fine")
    junit.write_stand_in(bad, "run", 3, "it leaked Stand-In-Secret-1")
    assert junit.counts(ok) == {"tests": 1, "failures": 0, "errors": 0, "skipped": 0}
    assert junit.counts(bad) == {"tests": 1, "failures": 1, "errors": 0, "skipped": 0}
    assert junit.failures(bad) == ["ci-kit::test-command"]
    assert "Stand-In-Secret-1" not in bad.read_text() and "exit 3" in bad.read_text()


# -- summaries -----------------------------------------------------------------------------------

SHA = "ab" * 32


def test_build_and_push_summaries_list_every_file_with_its_sha256() -> None:
    from ci_kit.build import BuiltFile, Manifest

    m = Manifest("churn-model", "1.0", "c" * 40, [BuiltFile("churn_model-1.0.tar.gz", SHA, 10), BuiltFile("w.whl", "cd" * 32, 9)])
    text = summary.build(m)
    assert text.startswith("### ci-kit build: `churn-model==1.0` (not uploaded)")
    assert f"| `churn_model-1.0.tar.gz` | `{SHA}` |" in text and "2 file(s) built" in text
    outputs = {"requirement": "churn-model==1.0", "index": "ci/unstable", "commit": "c" * 40,
               "files": [{"filename": "a.whl", "sha256": SHA}, {"filename": "b.tar.gz", "sha256": SHA}]}
    assert "1 file(s) uploaded, 1 already there" in summary.push(outputs, ["a.whl"])


def test_the_test_summary_has_a_row_per_run_and_names_failed_tests() -> None:
    spec = release.parse("x==1.0")
    runs = [RunResult({"filename": "x-1.0-py3-none-any.whl", "kind": "wheel", "sha256": SHA, "python": "3.12", "passed": True,
                       "counts": {"tests": 4, "failures": 0, "errors": 0, "skipped": 1}, "junit_path": "/r/junit-a.xml",
                       "record_path": "/r/a.json", "message": "", "failed_tests": []}),
            RunResult({"filename": "x-1.0.tar.gz", "kind": "sdist", "sha256": SHA, "python": "3.11", "passed": False,
                       "counts": {"tests": 4, "failures": 1, "errors": 1, "skipped": 0}, "junit_path": "/r/junit-b.xml",
                       "record_path": "/r/b.json", "message": "", "failed_tests": [f"t::test_{i}" for i in range(32)]})]
    text = summary.run_report(RunReport(spec, "c" * 40, runs), "x==1.0: tests failed")
    assert text.startswith("### ci-kit test: `x==1.0` at `cccccccccccc`")
    assert "| `x-1.0-py3-none-any.whl` | 3.12 | ✅ passed | 4 | 0 | 1 | `junit-a.xml` |" in text
    assert "| `x-1.0.tar.gz` | 3.11 | ❌ failed | 4 | 2 | 0 | `junit-b.xml` |" in text
    assert "- `t::test_29` (sdist, Python 3.11)" in text and "t::test_30`" not in text and "- … and 2 more" in text
    assert text.endswith("**x==1.0: tests failed**")


def test_the_promote_summary_says_what_happened() -> None:
    from ci_kit.promote import Promotion

    spec = release.parse("x==1.0")
    assert "`x==1.0` promoted to `ci/stable`" in summary.promote(Promotion(spec, "ci/unstable", "ci/stable", changed=True))
    assert "was already on" in summary.promote(Promotion(spec, "ci/unstable", "ci/stable", changed=False, gate=["g"]))
    dry = summary.promote(Promotion(spec, "ci/unstable", "ci/stable", changed=False, dry_run=True, forced=True, gate=["no result"]))
    assert dry.splitlines()[0].endswith("would be promoted to `ci/stable` (FORCED)") and "- no result" in dry
