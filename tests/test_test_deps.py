"""Test dependencies the way projects declare them (extras, PEP 735 groups, requirements
files), checked before anything runs; metadata that is merely missing warns; output
full of colour codes never breaks result reading."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import error_line, git, run_cikit

NEEDS_SIX = "\n\ndef test_needs_a_group():\n    import six\n    assert six.PY3\n"


def _add_group_test(repo, group_in_pyproject: bool = True) -> None:
    t = repo / "tests" / "test_model.py"
    t.write_text(t.read_text() + NEEDS_SIX)
    if group_in_pyproject:
        p = repo / "pyproject.toml"
        p.write_text(p.read_text() + '\n[dependency-groups]\ntest = ["pytest>=7", "six"]\n')
    git("commit", "-qam", "a test that needs six", cwd=repo)


def test_dependency_groups_are_installed_and_a_missing_one_is_named(fresh_user, product_repo):
    _add_group_test(product_repo)
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.0"}
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    r = run_cikit("test", "churn-model==2.0.0", cwd=product_repo, env=env)
    assert r.returncode == 9, r.output
    line = error_line(r)
    assert "could not import six" in line and "test-groups (the repository has: test)" in line
    r = run_cikit("test", "churn-model==2.0.0", "--json", cwd=product_repo, env={**env, "CI_KIT_TEST_GROUPS": "test"})
    assert r.returncode == 0, r.output
    assert all(run["counts"]["tests"] == 5 for run in json.loads(r.stdout)["runs"])


def test_requirements_files_are_installed(fresh_user, product_repo):
    _add_group_test(product_repo, group_in_pyproject=False)
    (product_repo / "requirements-test.txt").write_text("six\n")
    git("add", "-A", cwd=product_repo)
    git("commit", "-qm", "requirements", cwd=product_repo)
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.1", "CI_KIT_TEST_REQUIREMENTS": "requirements-test.txt"}
    r = run_cikit("run", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output


def test_unknown_extras_groups_and_files_are_configuration_errors(fresh_user, product_repo):
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.2"}
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    for var, value, words in (("CI_KIT_TEST_EXTRAS", "tests", "the package has no extra tests (it has: test)"),
                              ("CI_KIT_TEST_GROUPS", "dev", "pyproject.toml has no dependency group dev (it has: none)"),
                              ("CI_KIT_TEST_REQUIREMENTS", "nope.txt", "nope.txt not found in the repository")):
        r = run_cikit("test", "churn-model==2.0.2", cwd=product_repo, env={**env, var: value})
        assert r.returncode == 2, r.output
        assert words in error_line(r)
    idx = fresh_user.index()
    rel = idx.release(f"{fresh_user.user}/unstable", "churn-model", "2.0.2")
    assert [idx.read_result(link)["ci_kit"]["kind"] for link in rel.results] == ["build", "build"]  # no test record


def test_a_product_without_readme_builds_with_a_warning_unless_strict(fresh_user, product_repo):
    p = product_repo / "pyproject.toml"
    p.write_text(p.read_text().replace('readme = "README.md"\n', ""))
    git("commit", "-qam", "no readme", cwd=product_repo)
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.3"}
    r = run_cikit("build", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    assert "build: metadata:" in r.stderr and "long_description" in r.stderr
    r = run_cikit("build", cwd=product_repo, env={**env, "CI_KIT_METADATA_CHECK": "strict"})
    assert r.returncode == 4 and "twine check --strict failed" in error_line(r), r.output


def test_colour_codes_and_control_characters_in_test_output_are_read(fresh_user, product_repo):
    t = product_repo / "tests" / "test_model.py"
    t.write_text(t.read_text() + '\n\ndef test_noisy():\n    print("\\x1b[31mred\\x1b[0m \\x00\\x07\\x1b[2J")\n'
                 '    assert False, "\\x1b[1mbold failure\\x1b[0m \\x0c"\n')
    git("commit", "-qam", "noisy failing test", cwd=product_repo)
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.4", "PYTEST_ADDOPTS": "--color=yes -o junit_logging=all"}
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    r = run_cikit("test", "churn-model==2.0.4", cwd=product_repo, env=env)
    assert r.returncode == 9, r.output
    assert "tests failed" in error_line(r)
    idx = fresh_user.index()
    rel = idx.release(f"{fresh_user.user}/unstable", "churn-model", "2.0.4")
    tests = [idx.read_result(link)["ci_kit"] for link in rel.results]
    tests = [t for t in tests if t["kind"] == "test"]
    assert len(tests) == 2 and all(t["tests"] == 5 and t["failures"] == 1 and t["counted"] for t in tests)


def test_python_dash_m_pytest_gets_pytest_like_pytest_does(fresh_user, product_repo):
    """`python -m pytest` is how many projects' CI runs their tests (corpus, issue 13): it
    gets pytest installed as `pytest` does, runs on the environment's Python and is counted."""
    from ci_kit.testdeps import _MISSING
    from ci_kit.testrun import runs_pytest

    assert runs_pytest(["python", "-m", "pytest", "-q"]) and runs_pytest(["python3.11", "-m", "pytest"])
    assert not runs_pytest(["python", "-m", "unittest"]) and not runs_pytest(["nox"])
    assert _MISSING.search("/env/bin/python: No module named pytest").group(1) == "pytest"  # `python -m`'s words
    # no extra provides pytest: only ci-kit's own rule can install it
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.2", "CI_KIT_TEST_EXTRAS": "[]",
           "CI_KIT_TEST_COMMAND": "python -m pytest -q"}
    r = run_cikit("run", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    runs = json.loads(r.stdout)["tests"]["runs"]
    assert runs and all(run["counts"]["tests"] == 4 for run in runs)
    record = json.loads(Path(runs[0]["record_path"]).read_text())
    assert "/site-packages/churn_model/" in record["ci_kit"]["proof"]["churn_model"]


def test_a_tox_env_that_does_not_exist_or_conflicts_is_a_configuration_error(fresh_user, product_repo):
    (product_repo / "tox.ini").write_text("[testenv]\nextras = test\ncommands = pytest {posargs}\n")
    git("add", "tox.ini", cwd=product_repo)
    git("commit", "-qm", "tox", cwd=product_repo)
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.9"}
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    r = run_cikit("test", "churn-model==2.0.9", cwd=product_repo, env={**env, "CI_KIT_TOX_ENV": "nosuchenv"})
    assert r.returncode == 2, r.output
    assert "tox-env 'nosuchenv'" in error_line(r) and "not found" in error_line(r)
    r = run_cikit("test", "churn-model==2.0.9", cwd=product_repo, env={**env, "CI_KIT_TOX_ENV": "py27"})
    assert r.returncode == 2, r.output
    assert "conflicting with base python" in error_line(r)
