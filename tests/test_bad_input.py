"""Bad input: one line that says what is wrong and what to do, a documented exit code,
no traceback, and the index untouched."""

from __future__ import annotations

import subprocess

import pytest

from conftest import clean_env, error_line, free_port, git, make_repo, run_cikit


def _unstable_files(fresh_user, version):
    rel = fresh_user.index().release(f"{fresh_user.user}/unstable", "churn-model", version)
    return None if rel is None else sorted(f.sha256 for f in rel.files)


def test_not_a_git_repository(fresh_user, tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\nversion='1'\n")
    r = run_cikit("build-and-push", cwd=tmp_path, env=fresh_user.env)
    assert r.returncode == 3
    assert "is not inside a git repository" in error_line(r)


def test_no_pyproject(fresh_user, tmp_path):
    git("init", "-q", cwd=tmp_path)
    r = run_cikit("build", cwd=tmp_path, env=fresh_user.env)
    assert r.returncode == 3
    assert "no pyproject.toml in" in error_line(r)


def test_dirty_work_tree(fresh_user, product_repo):
    (product_repo / "src" / "churn_model" / "model.py").write_text("# edited\n")
    r = run_cikit("build-and-push", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 3
    assert "uncommitted changes (src/churn_model/model.py)" in error_line(r)
    assert fresh_user.index().projects(f"{fresh_user.user}/unstable") == []


def test_index_unreachable(product_repo):
    env = {**clean_env(), "CI_KIT_INDEX_URL": f"http://127.0.0.1:{free_port()}", "CI_KIT_PASSWORD": "some-password"}
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 5
    assert "cannot reach the index at" in error_line(r)


def test_wrong_credentials(fresh_user, product_repo):
    r = run_cikit("build-and-push", cwd=product_repo, env={**fresh_user.env, "CI_KIT_PASSWORD": "wrong-password"})
    assert r.returncode == 6
    assert f"devpi user '{fresh_user.user}' could not log in" in error_line(r)
    assert fresh_user.index().projects(f"{fresh_user.user}/unstable") == []


def test_no_password(fresh_user, product_repo):
    env = {k: v for k, v in fresh_user.env.items() if k != "CI_KIT_PASSWORD"}
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 6
    assert "no password" in error_line(r) and "CI_KIT_PASSWORD" in r.stderr


def test_index_missing(fresh_user, product_repo):
    r = run_cikit("build-and-push", "--unstable-index", f"{fresh_user.user}/nope", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 7
    assert f"index {fresh_user.user}/nope does not exist" in error_line(r)
    assert not (product_repo / "dist").exists()  # checked before building


def test_release_not_on_unstable(fresh_user, product_repo):
    for verb in ("test", "promote", "test-and-promote"):
        r = run_cikit(verb, "churn-model==9.9.9", cwd=product_repo, env=fresh_user.env)
        assert r.returncode == 7, (verb, r.output)
        assert f"churn-model==9.9.9 is not on {fresh_user.user}/unstable" in error_line(r)


@pytest.mark.parametrize("req", ["churn-model", "churn-model>=1.0", "churn model==1", "churn-model==1.*", "==1.0"])
def test_malformed_requirement(fresh_user, product_repo, req):
    r = run_cikit("promote", req, cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 2
    assert req in error_line(r)


def test_no_tests_found(fresh_user, product_repo):
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "1.0.0"}
    git("rm", "-q", "-r", "tests", cwd=product_repo)
    git("commit", "-qm", "no tests", cwd=product_repo)
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    r = run_cikit("test-and-promote", "churn-model==1.0.0", cwd=product_repo, env=env)
    assert r.returncode == 9
    assert "no tests found" in error_line(r)
    assert fresh_user.index().release(f"{fresh_user.user}/stable", "churn-model", "1.0.0") is None


def test_unknown_config_key(fresh_user, product_repo):
    p = product_repo / "pyproject.toml"
    p.write_text(p.read_text() + 'pyhton-versions = ["3.11"]\n')
    git("commit", "-qam", "typo", cwd=product_repo)
    r = run_cikit("build-and-push", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 2
    line = error_line(r)
    assert "[tool.ci-kit]: unknown key `pyhton-versions`" in line and str(p) in line
    assert "python-versions" in r.stderr  # the hint lists the accepted keys


@pytest.mark.parametrize("toml, words", [
    ('python-versions = "3.11"', "`python-versions` must be a list of strings"),
    ('python-versions = ["3"]', "`python-versions` must be a non-empty list of MAJOR.MINOR"),
    ('image = "yes"', "`image` must be true or false"),
    ('stable-index = "stable"', "`stable-index` must be devpi's USER/INDEX form"),
])
def test_ill_typed_config_key(fresh_user, product_repo, toml, words):
    p = product_repo / "pyproject.toml"
    p.write_text(p.read_text() + toml + "\n")
    r = run_cikit("config", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 2
    assert words in error_line(r)


def test_bad_environment_value_names_the_variable(fresh_user, product_repo):
    r = run_cikit("config", cwd=product_repo, env={**fresh_user.env, "CI_KIT_SERVER_PORT": "http"})
    assert r.returncode == 2
    assert "environment CI_KIT_SERVER_PORT: `server-port` must be an integer" in error_line(r)
    r = run_cikit("config", cwd=product_repo, env={**fresh_user.env, "CI_KIT_INDEX_URLS": "x"})
    assert r.returncode == 2
    assert "unknown variable CI_KIT_INDEX_URLS" in error_line(r)


def test_build_backend_failure_shows_the_backends_error(fresh_user, tmp_path):
    repo = make_repo(tmp_path / "broken")
    p = repo / "pyproject.toml"
    p.write_text(p.read_text().replace('dynamic = ["version"]', 'version = "not a version!"'))
    git("commit", "-qam", "bad version", cwd=repo)
    r = run_cikit("build-and-push", cwd=repo, env=fresh_user.env)
    assert r.returncode == 4
    line = error_line(r)
    assert line.startswith("ci-kit: error: the build backend failed:")
    assert "not a version!" in r.stderr  # the backend's own words
    assert fresh_user.index().projects(f"{fresh_user.user}/unstable") == []


def test_commit_not_matching_the_version(fresh_user, product_repo):
    r = run_cikit("build-and-push", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 0
    req = r.stdout.strip().splitlines()[-1]
    (product_repo / "NOTES").write_text("x")
    git("add", "NOTES", cwd=product_repo)
    git("commit", "-qm", "later", cwd=product_repo)
    r = run_cikit("test", req, "--commit", "HEAD", cwd=product_repo, env=fresh_user.env)  # HEAD is a later commit
    assert r.returncode == 3
    assert "was built from commit" in error_line(r) and "--commit" in r.stderr


def test_no_verb_prints_help_and_exit_code_2():
    r = run_cikit()
    assert r.returncode == 2 and "build-and-push" in r.stdout


def test_help_lists_verbs_and_exit_codes():
    r = run_cikit("--help")
    assert r.returncode == 0
    for verb in ("build", "push", "test", "promote", "status", "server", "build-and-push", "test-and-promote", "run"):
        assert f"\n    {verb}" in r.stdout
    assert "10  promotion refused by the gate" in r.stdout


def test_empty_environment_value_means_not_set(product_repo):
    """CI front ends pass empty inputs as empty variables: the product's own config wins."""
    env = {**clean_env(), "CI_KIT_USER": "", "CI_KIT_TEST_EXTRAS": "", "CI_KIT_INDEX_URL": ""}
    r = run_cikit("config", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    import json

    data = json.loads(r.stdout)
    assert data["unstable-index"]["value"] == "ci/unstable"
    assert data["test-extras"] == {"value": ["test"], "source": "pyproject.toml"}


def test_build_that_changes_tracked_files_is_refused(fresh_user, product_repo):
    """Tracked build output (egg-info) would make the version dirty: say so, push nothing."""
    info = product_repo / "src" / "churn_model.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: churn-model\nVersion: 0.0.0\n")
    git("add", "-f", "src/churn_model.egg-info", cwd=product_repo)
    git("commit", "-qm", "oops, build output", cwd=product_repo)
    r = run_cikit("build-and-push", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 3, r.output
    assert "the build changed tracked files: src/churn_model.egg-info/" in error_line(r)
    assert fresh_user.index().projects(f"{fresh_user.user}/unstable") == []


def test_dependencies_that_cannot_be_installed_are_an_environment_error(fresh_user, product_repo):
    """The release installs, but its test tools are on no index ci-kit may use: exit 12, one
    line in uv's words, no result attached, nothing promoted."""
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "1.0.0",
           # an index that has nothing (on 127.0.0.1): pytest, asked for by the test extra, is not there
           "CI_KIT_DEPENDENCY_INDEX_URL": f"{fresh_user.env['CI_KIT_INDEX_URL']}/{fresh_user.user}/stable/+simple/"}
    assert run_cikit("build-and-push", cwd=product_repo, env=env).returncode == 0
    r = run_cikit("test-and-promote", "churn-model==1.0.0", cwd=product_repo, env=env)
    assert r.returncode == 12, r.output
    line = error_line(r)
    assert "installing into the Python" in line and "environment failed" in line and "pytest" in line
    idx = fresh_user.index()
    rel = idx.release(f"{fresh_user.user}/unstable", "churn-model", "1.0.0")
    assert rel is not None and [idx.read_result(link)["ci_kit"]["kind"] for link in rel.results] == ["build", "build"]
    assert fresh_user.index().release(f"{fresh_user.user}/testing", "churn-model", "1.0.0") is None


def test_server_that_cannot_start_is_exit_13(tmp_path):
    """`ci-kit server start` where its directory cannot be made: one line, exit 13, nothing started."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    port = free_port()
    env = {**clean_env(), "CI_KIT_SERVER_DIR": str(blocker / "devpi"), "CI_KIT_SERVER_PORT": str(port)}
    r = run_cikit("server", "start", env=env)
    assert r.returncode == 13, r.output
    assert "cannot make the server directory" in error_line(r) and "Not a directory" in error_line(r)
    assert "Traceback" not in r.output


def test_shallow_and_tagless_clones_are_refused_for_building(fresh_user, product_repo, tmp_path):
    """Both would build a wrong version without a word (setuptools_scm counts history)."""
    git("commit", "--allow-empty", "-qm", "second", cwd=product_repo)
    git("tag", "v1.0.0", cwd=product_repo)
    git("commit", "--allow-empty", "-qm", "third", cwd=product_repo)
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", product_repo.as_uri(), str(shallow)], check=True)
    r = run_cikit("build-and-push", cwd=shallow, env=fresh_user.env)
    assert r.returncode == 3, r.output
    assert "is a shallow clone" in error_line(r) and "git fetch --unshallow --tags" in r.stderr
    tagless = tmp_path / "tagless"
    subprocess.run(["git", "clone", "-q", "--no-tags", product_repo.as_uri(), str(tagless)], check=True)
    r = run_cikit("build-and-push", cwd=tagless, env=fresh_user.env)
    assert r.returncode == 3, r.output
    assert "origin has tags but the repository" in error_line(r) and "git fetch --tags" in r.stderr
    assert fresh_user.index().projects(f"{fresh_user.user}/unstable") == []
    git("fetch", "-q", "--tags", cwd=tagless)
    r = run_cikit("build", cwd=tagless, env=fresh_user.env)
    assert r.returncode == 0 and r.stdout.strip().startswith("churn-model==1.0.1.dev1"), r.output


def test_status_of_an_unknown_project_and_a_bad_limit(fresh_user, product_repo):
    r = run_cikit("status", "no-such-product", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 7 and "no project no-such-product on" in error_line(r), r.output
    r = run_cikit("status", "churn-model", "--limit", "-1", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 2 and "--limit must be 1 or more" in error_line(r), r.output
