"""No promotion without a passing result for each exact sha256."""

from __future__ import annotations

import json

import pytest

from conftest import error_line, git, run_cikit


@pytest.fixture
def pushed(fresh_user, product_repo):
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "1.1.0"}
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    idx = fresh_user.index()
    return env, idx, idx.release(f"{fresh_user.user}/unstable", "churn-model", "1.1.0")


def _assert_refused(r, *fragments):
    assert r.returncode == 10, r.output
    line = error_line(r)
    assert line.startswith("ci-kit: error: churn-model==1.1.0 cannot be promoted")
    for frag in fragments:
        assert frag in line


def _stable_is_empty(fresh_user, idx):
    assert idx.release(f"{fresh_user.user}/stable", "churn-model", "1.1.0") is None


def test_missing_results_refuse(fresh_user, product_repo, pushed):
    env, idx, rel = pushed
    r = run_cikit("promote", "churn-model==1.1.0", cwd=product_repo, env=env)
    _assert_refused(r, *(f"{f.basename} (sha256 {f.sha256[:16]}…) has no test result" for f in rel.files))
    r = run_cikit("promote", "churn-model==1.1.0", "--dry-run", cwd=product_repo, env=env)
    assert r.returncode == 10
    _stable_is_empty(fresh_user, idx)


def test_results_for_other_bytes_refuse(fresh_user, product_repo, pushed):
    env, idx, rel = pushed
    from ci_kit import results

    for f in rel.files:
        commit = git("rev-parse", "HEAD", cwd=product_repo)
        rec = results.test_record(filename=f.basename, sha256="0" * 64, commit=commit, python="3.11", python_full="3.11.7",
                                  executable="python", command=["pytest"], retcode=0, output="", counts={"tests": 1},
                                  counted=True, junit="", metrics={}, proof={}, duration=1.0)
        idx.attach_result(f, rec)
    r = run_cikit("promote", "churn-model==1.1.0", cwd=product_repo, env=env)
    _assert_refused(r, "has no test result (results exist only for other bytes)")
    _stable_is_empty(fresh_user, idx)


def test_failed_tests_refuse_and_promote_nothing(fresh_user, product_repo):
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "1.1.0"}
    test_file = product_repo / "tests" / "test_model.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_regression():\n    assert churn_model.load_model()[0] > 100\n")
    git("commit", "-qam", "a failing test", cwd=product_repo)
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    summary = product_repo.parent / "summary.md"
    r = run_cikit("test-and-promote", "churn-model==1.1.0", "--summary", str(summary), cwd=product_repo, env=env)
    assert r.returncode == 9, r.output
    assert "❌ failed" in summary.read_text() and "promote" not in summary.read_text()
    assert "Failed tests:" in summary.read_text() and "test_model::test_regression` (wheel" in summary.read_text()
    assert "tests failed" in error_line(r) and "Nothing was promoted" in r.stderr
    idx = fresh_user.index()
    _stable_is_empty(fresh_user, idx)
    r = run_cikit("promote", "churn-model==1.1.0", cwd=product_repo, env=env)
    _assert_refused(r, "failed its tests on Python")


def test_a_devpi_test_record_is_shown_but_does_not_open_the_gate(fresh_user, product_repo, pushed):
    """`devpi test` (tox) records carry no test count and no commit: not evidence of a run."""
    env, idx, rel = pushed
    import sys

    for f in rel.files:
        idx.attach_result(f, {"reportversion": "1", "installpkg": {"basename": f.basename, "sha256": f.sha256},
                              "testenvs": {"py": {"test": [{"command": ["pytest"], "retcode": 0}],
                                                  "python": {"version_info": list(sys.version_info[:3])}}}})
    r = run_cikit("promote", "churn-model==1.1.0", cwd=product_repo, env=env)
    _assert_refused(r, "has no test result")
    assert "no ci_kit fields" in r.stderr
    _stable_is_empty(fresh_user, idx)


def test_force_promotes_and_records_who(fresh_user, product_repo, pushed):
    env, _idx, _rel = pushed
    r = run_cikit("promote", "churn-model==1.1.0", "--force", "--json", cwd=product_repo,
                  env={**env, "GITHUB_ACTOR": "alice"})
    assert r.returncode == 0, r.output
    assert json.loads(r.stdout)["forced"] is True
    r = run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env)
    promoted = json.loads(r.stdout)["versions"][0]["promoted"]
    assert promoted == [{"to": f"{fresh_user.user}/stable", "by": "alice", "at": promoted[0]["at"], "forced": True}]
