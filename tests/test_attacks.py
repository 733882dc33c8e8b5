"""The gate under attack, against a real devpi-server: forged records, swaps between the
gate and the copy, hollow runs, partial releases, races and lost answers. Every attempt
must be refused or harmless; docs/reliability.md ("Attacks") lists each one with the
test that shows it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import CIKIT, error_line, git, run_cikit
from faultproxy import FaultProxy

V = "1.1.0"


def _env(fresh_user, **extra: str) -> dict[str, str]:
    return {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": V, **extra}


def _push(fresh_user, repo: Path, **extra: str) -> dict[str, str]:
    env = _env(fresh_user, **extra)
    r = run_cikit("build-and-push", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    return env


def _release(fresh_user, where: str = "unstable", version: str = V):
    return fresh_user.index().release(f"{fresh_user.user}/{where}", "churn-model", version)


def _forged(f, *, commit: str, python: str = "3.11", passed: bool = True, tests: int = 3) -> dict:
    """A record in ci-kit's own schema that says the file passed."""
    from ci_kit import results

    return results.test_record(filename=f.basename, sha256=f.sha256, commit=commit, python=python, python_full=python + ".0",
                               executable="python", command=["pytest"], retcode=0 if passed else 1, output="",
                               counts={"tests": tests, "failures": 0 if passed else 1}, counted=True, junit="",
                               metrics={}, proof={}, duration=0.1)


def _passed(fresh_user, repo: Path):
    """The CI identity's own passing record on every file of the release (a pass the
    gate counts): returns the logged-in index and the release."""
    idx, rel = fresh_user.index(), _release(fresh_user)
    commit = git("rev-parse", "HEAD", cwd=repo)
    for f in rel.files:
        idx.attach_result(f, _forged(f, commit=commit, python=_py()))
    return idx, rel


def _swapped_wheel(repo: Path, rel, tmp_path: Path, tail: bytes):
    """Other bytes under the wheel's filename, and that filename's release file."""
    wheel = next(f for f in rel.files if f.kind == "wheel")
    swapped = tmp_path / wheel.basename
    swapped.write_bytes((repo / "dist" / wheel.basename).read_bytes() + tail)
    return wheel, swapped


def _py() -> str:
    import sys

    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def _nothing_promoted(fresh_user) -> None:
    assert _release(fresh_user, "testing") is None and _release(fresh_user, "stable") is None


# -- 1. forged passes --------------------------------------------------------------------------

def test_anonymous_forged_pass_is_refused_on_an_open_index_and_ignored_after(fresh_user, product_repo):
    """An index made the usual way lets anyone attach results: the gate refuses to rely
    on it; once closed, the forged records already there still do not count."""
    idx = fresh_user.index()
    open_index = f"{fresh_user.user}/open"
    idx.request("PUT", open_index, json={"volatile": True})  # devpi's defaults: acl_toxresult_upload = :ANONYMOUS:
    env = _push(fresh_user, product_repo, CI_KIT_UNSTABLE_INDEX=open_index)
    rel = idx.release(open_index, "churn-model", V)
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    for f in rel.files:  # no credentials at all: both ci-kit's shape and devpi test's tox shape
        for rec in (_forged(f, commit=commit, python=_py()),
                    {"installpkg": {"sha256": f.sha256}, "testenvs": {"py": {"test": [{"retcode": 0}]}}}):
            assert requests.post(f.url, json=rec, headers={"Accept": "application/json"}).status_code == 200
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10, r.output
    assert f"{open_index} lets :ANONYMOUS: attach results (acl_toxresult_upload)" in error_line(r)
    assert f"devpi index {open_index} acl_toxresult_upload={fresh_user.user}" in r.stderr

    idx.request("PATCH", open_index, json={**{k: v for k, v in idx.index_config(open_index).items() if k not in ("projects", "type")},
                                           "acl_toxresult_upload": [fresh_user.user]})
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10, r.output
    assert "has no test result" in error_line(r)
    assert "record(s) ignored" in r.stderr and "attached by anonymous, not a trusted uploader" in r.stderr
    _nothing_promoted(fresh_user)
    status = json.loads(run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env).stdout)
    assert status["versions"][0]["tests"] == {} and status["versions"][0]["ignored_records"] == 4


def test_another_users_pass_does_not_count_unless_trusted(fresh_user, devpi, product_repo):
    """A record attached by a real but untrusted user is ignored; trusted-uploaders opts in."""
    from ci_kit.index import Index

    env = _push(fresh_user, product_repo)
    idx = fresh_user.index()
    other = f"{fresh_user.user}-tester"
    Index(devpi.url, other).create_user(other, "pw-other-tester-9")
    unstable = f"{fresh_user.user}/unstable"
    cfg = {k: v for k, v in idx.index_config(unstable).items() if k not in ("projects", "type")}
    idx.request("PATCH", unstable, json={**cfg, "acl_toxresult_upload": [fresh_user.user, other]})
    tester = Index(devpi.url, other)
    tester.login("pw-other-tester-9")
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    for f in _release(fresh_user).files:
        tester.attach_result(f, _forged(f, commit=commit, python=_py()))
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10 and f"lets {other} attach results" in error_line(r)
    r = run_cikit("promote", f"churn-model=={V}", "--json", cwd=product_repo, env={**env, "CI_KIT_TRUSTED_UPLOADERS": other})
    assert r.returncode == 0, r.output  # the index's log names `other`, who is now trusted
    assert any(f"by {other}" in line for line in json.loads(r.stdout)["gate"])


# -- 2. swap between the gate and the copy ------------------------------------------------------

def test_swap_between_gate_and_copy_never_reaches_stable(fresh_user, product_repo, tmp_path):
    env = _push(fresh_user, product_repo)
    idx, rel = _passed(fresh_user, product_repo)
    wheel, swapped = _swapped_wheel(product_repo, rel, tmp_path, b"\0untested")
    from ci_kit.dists import read_metadata

    with FaultProxy(fresh_user.url) as proxy:
        # the first download of the wheel is held back; meanwhile other bytes replace it on unstable
        held = proxy.add("GET", lambda path, _body: path.endswith(wheel.basename), "delay", seconds=3)
        proc = subprocess.Popen([CIKIT, "promote", f"churn-model=={V}"], cwd=product_repo, text=True,
                                env={**env, "CI_KIT_INDEX_URL": proxy.url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert held.hit.wait(60), "promote never fetched the wheel"
        idx.upload(f"{fresh_user.user}/unstable", swapped, read_metadata(product_repo / "dist" / wheel.basename))
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 10, out + err
    assert "changed on" in err and "after the gate" in err and "nothing was copied" in err
    _nothing_promoted(fresh_user)
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)  # and every later run
    assert r.returncode == 10, r.output
    _nothing_promoted(fresh_user)


def test_swap_after_testing_is_refused(fresh_user, product_repo, tmp_path):
    env = _push(fresh_user, product_repo)
    idx, rel = _passed(fresh_user, product_repo)
    wheel, swapped = _swapped_wheel(product_repo, rel, tmp_path, b"\0")
    from ci_kit.dists import read_metadata

    idx.upload(f"{fresh_user.user}/unstable", swapped, read_metadata(product_repo / "dist" / wheel.basename))
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10, r.output
    assert f"{wheel.basename}" in error_line(r)
    _nothing_promoted(fresh_user)


def test_deleted_records_take_the_pass_with_them(fresh_user, product_repo):
    """Results removed from unstable (the release deleted and pushed again) are gone: refused."""
    env = _push(fresh_user, product_repo)
    r = run_cikit("test", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    idx = fresh_user.index()
    idx.request("DELETE", f"{fresh_user.user}/unstable/churn-model/{V}")
    assert run_cikit("push", cwd=product_repo, env=env).returncode == 0
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10 and "has no test result" in error_line(r), r.output
    _nothing_promoted(fresh_user)


# -- 3. "already on the target" is verified ----------------------------------------------------

def test_untested_bytes_on_the_target_are_reported_on_every_run(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    idx = fresh_user.index()
    from ci_kit.dists import read_metadata

    for p in sorted((product_repo / "dist").glob("churn_model-*")):  # same bytes, put there past the gate
        idx.upload(f"{fresh_user.user}/stable", p, read_metadata(p))
    for _ in range(2):
        r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
        assert r.returncode == 14, r.output
        assert "without passing evidence" in error_line(r) and "--force" in r.stderr
    # recording it as forced is the way to accept it; then re-runs are verified successes
    r = run_cikit("promote", f"churn-model=={V}", "--force", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["forced"] is True, r.output
    r = run_cikit("promote", f"churn-model=={V}", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["already"] is True, r.output


def test_other_bytes_on_the_target_are_a_collision(fresh_user, product_repo, tmp_path):
    env = _push(fresh_user, product_repo)
    idx = fresh_user.index()
    from ci_kit.dists import read_metadata

    wheel = next(iter((product_repo / "dist").glob("*.whl")))
    other = tmp_path / wheel.name
    other.write_bytes(wheel.read_bytes() + b"\0")
    idx.upload(f"{fresh_user.user}/stable", other, read_metadata(wheel))
    for args in ((), ("--force",)):
        r = run_cikit("promote", f"churn-model=={V}", *args, cwd=product_repo, env=env)
        assert r.returncode == 8, r.output
        assert "already on" in error_line(r) and "with different bytes" in error_line(r)


@pytest.mark.parametrize("key", ["CI_KIT_TESTING_INDEX", "CI_KIT_STABLE_INDEX"])
def test_target_equal_to_unstable_is_a_configuration_error(fresh_user, product_repo, key):
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo,
                  env={**fresh_user.env, key: f"{fresh_user.user}/unstable"})
    assert r.returncode == 2, r.output
    assert "unstable-index are both" in error_line(r)


# -- 4. the commit of every release, final versions included ------------------------------------

def test_final_version_is_tested_only_at_the_commit_it_was_built_from(fresh_user, product_repo):
    import os

    env = _push(fresh_user, product_repo)
    built = git("rev-parse", "HEAD", cwd=product_repo)
    # a later commit whose build gives the very same bytes (same tree, same commit time)
    when = git("log", "-1", "--format=%cI", cwd=product_repo)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "same tree"], cwd=product_repo, check=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x.invalid", "GIT_COMMITTER_NAME": "T",
                        "GIT_COMMITTER_EMAIL": "t@x.invalid", "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
    later = git("rev-parse", "HEAD", cwd=product_repo)
    r = run_cikit("test", f"churn-model=={V}", "--commit", later, cwd=product_repo, env=env)
    assert r.returncode == 3, r.output
    assert f"was built from commit {built[:12]}, not {later[:12]}" in error_line(r)
    r = run_cikit("build-and-push", cwd=product_repo, env=env)  # same bytes from another commit
    assert r.returncode == 8, r.output
    assert f"was built from commit {built[:12]}" in error_line(r)
    # records for another commit do not open the gate
    idx = fresh_user.index()
    for f in _release(fresh_user).files:
        idx.attach_result(f, _forged(f, commit=later, python=_py()))
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10 and "results exist only for other commits" in error_line(r), r.output
    # without --commit, job 2 tests the commit job 1 recorded
    r = run_cikit("test", f"churn-model=={V}", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    assert json.loads(r.stdout)["commit"] == built


# -- 5. a pass means tests ran -----------------------------------------------------------------

def test_a_command_that_runs_no_tests_is_not_a_pass(fresh_user, product_repo):
    env = _push(fresh_user, product_repo, CI_KIT_TEST_COMMAND="true")
    r = run_cikit("test-and-promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 9, r.output
    assert "wrote no JUnit XML" in error_line(r)
    _nothing_promoted(fresh_user)
    # accepted only when said so, and then the records and status say it
    r = run_cikit("test-and-promote", f"churn-model=={V}", cwd=product_repo, env={**env, "CI_KIT_REQUIRE_JUNIT": "false"})
    assert r.returncode == 0, r.output
    row = json.loads(run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env).stdout)["versions"][0]
    assert row["tests"] == {f"py{_py()}": "passed (no test count)", f"py{_py()} (sdist)": "passed (no test count)"}


def test_tox_configured_in_pyproject_gets_the_overrides_and_the_python_that_ran(fresh_user, product_repo):
    """[tool.tox] ignores overrides written for tox.ini; the run must still report JUnit
    and the import proof, and on --python 3.12 record 3.12 because that is what ran."""
    import shutil

    from conftest import require

    require(shutil.which("python3.12") or list(Path.home().glob(".pyenv/versions/3.12*")), "Python 3.12 is not installed")
    p = product_repo / "pyproject.toml"
    p.write_text(p.read_text() + '\n[tool.tox]\nenv_list = ["py"]\n\n[tool.tox.env_run_base]\nextras = ["test"]\n'
                 'commands = [["pytest"]]\n')
    git("commit", "-qam", "tox in pyproject", cwd=product_repo)
    env = _push(fresh_user, product_repo, CI_KIT_TOX_ENV="py")
    r = run_cikit("test", f"churn-model=={V}", "--python", "3.12", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    for run in json.loads(r.stdout)["runs"]:
        ck = json.loads(Path(run["record_path"]).read_text())["ci_kit"]
        assert ck["python"] == "3.12" and ck["python_full"].startswith("3.12.")
        assert ck["counted"] and ck["tests"] == 4
        assert "/site-packages/churn_model/" in ck["proof"]["churn_model"]


# -- 6. every configured Python is covered -----------------------------------------------------

def test_a_configured_python_left_out_refuses(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    idx = fresh_user.index()
    for f in _release(fresh_user).files:
        idx.attach_result(f, _forged(f, commit=commit, python="3.11"))
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env={**env, "CI_KIT_PYTHON_VERSIONS": "3.11,3.12"})
    assert r.returncode == 10, r.output
    assert "has no result on Python 3.12" in error_line(r)
    _nothing_promoted(fresh_user)


def test_a_platform_wheel_needs_its_sdist_tested_where_it_does_not_fit(fresh_user, product_repo):
    """A cp311-only wheel and Pythons 3.11 + 3.12: the sdist must pass on 3.12."""
    from ci_kit import gate
    from ci_kit.evidence import FileRecords, Record
    from ci_kit.listing import ReleaseFile, ResultLink

    wheel = ReleaseFile("x-1-cp311-cp311-linux_x86_64.whl", "u/w", "a" * 64)
    sdist = ReleaseFile("x-1.tar.gz", "u/s", "b" * 64)

    def rec(f, py):
        return Record("test", f.sha256, "ci", {**_forged(f, commit="c" * 40, python=py)["ci_kit"]}, ResultLink("l", f.url, "ci"))

    recs = {wheel.basename: FileRecords([rec(wheel, "3.11")]), sdist.basename: FileRecords([rec(sdist, "3.11")])}
    v = gate.judge([wheel, sdist], recs, ["3.11", "3.12"], "c" * 40)
    assert list(v.failed) == [sdist.basename] and "has no result on Python 3.12" in v.failed[sdist.basename]
    recs[sdist.basename].records.append(rec(sdist, "3.12"))
    assert gate.judge([wheel, sdist], recs, ["3.11", "3.12"], "c" * 40).passed
    # and the test stage plans exactly that
    from ci_kit.testrun import _plan

    plan = _plan([wheel, sdist], ["3.11", "3.12"])
    assert [(f.kind, py) for f, py in plan] == [("wheel", "3.11"), ("sdist", "3.12")]


def test_failing_wheel_with_passing_sdist_refuses(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    idx = fresh_user.index()
    for f in _release(fresh_user).files:
        idx.attach_result(f, _forged(f, commit=commit, python=_py(), passed=f.kind == "sdist"))
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10 and "failed its tests on Python" in error_line(r), r.output
    # a later failure withdraws an earlier pass
    for f in _release(fresh_user).files:
        idx.attach_result(f, _forged(f, commit=commit, python=_py(), passed=True))
        idx.attach_result(f, _forged(f, commit=commit, python=_py(), passed=False))
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10, r.output
    _nothing_promoted(fresh_user)


# -- 7 and 8. interrupted and concurrent promotions --------------------------------------------

def _is_promotion_record(path: str, body: bytes) -> bool:
    return b'"kind": "promotion"' in body


def test_interrupted_promotion_gets_its_record_on_rerun(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    idx, _ = _passed(fresh_user, product_repo)
    with FaultProxy(fresh_user.url) as proxy:  # the server stores the record; its answer is lost
        proxy.add("POST", _is_promotion_record, "drop-after")
        r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env={**env, "CI_KIT_INDEX_URL": proxy.url})
    assert r.returncode != 0 and "Traceback" not in r.output
    for _ in range(2):
        r = run_cikit("promote", f"churn-model=={V}", "--json", cwd=product_repo, env=env)
        assert r.returncode == 0, r.output
    stable = _release(fresh_user, "stable")
    for f in stable.files:  # one promotion record per file: the lost one was not written twice
        kinds = [idx.read_result(link)["ci_kit"] for link in stable.results_for(f)]
        assert [k["forced"] for k in kinds if k["kind"] == "promotion"] == [False], kinds


def test_interrupted_forced_promotion_keeps_its_forced_marker(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    with FaultProxy(fresh_user.url) as proxy:  # killed after the copy: no promotion record at all
        proxy.add("POST", _is_promotion_record, "drop-before", times=10)
        r = run_cikit("promote", f"churn-model=={V}", "--force", cwd=product_repo, env={**env, "CI_KIT_INDEX_URL": proxy.url})
    assert r.returncode != 0
    assert _release(fresh_user, "stable") is not None
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 14 and "interrupted --force" in r.stderr, r.output
    r = run_cikit("promote", f"churn-model=={V}", "--force", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    row = json.loads(run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env).stdout)["versions"][0]
    assert row["promoted"] and all(p["forced"] for p in row["promoted"])


def test_concurrent_promotions_all_succeed_with_one_copy(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    _idx, _ = _passed(fresh_user, product_repo)
    procs = [subprocess.Popen([CIKIT, "promote", f"churn-model=={V}"], cwd=product_repo, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    stable = _release(fresh_user, "stable")
    assert sorted(f.basename for f in stable.files) == sorted(f.basename for f in _release(fresh_user).files)
    assert _promotion_records(fresh_user, stable) == {f.basename: 1 for f in stable.files}, outs


def _promotion_records(fresh_user, rel) -> dict[str, int]:
    idx = fresh_user.index()
    return {f.basename: sum(1 for link in rel.results_for(f) if (idx.read_result(link) or {}).get("ci_kit", {}).get("kind") == "promotion")
            for f in rel.files}


def test_concurrent_promotions_through_a_slow_proxy_elect_one_promoter(fresh_user, product_repo):
    """Four promote runs of one release started at once, every request slowed by a proxy
    so that their copies and claims interleave (claims.py): all exit 0, one copy on stable,
    one promotion record per file, written by one run; the others say it was that run."""
    env = _push(fresh_user, product_repo)
    _passed(fresh_user, product_repo)
    with FaultProxy(fresh_user.url) as proxy:
        proxy.add("GET", lambda _path, _body: True, "delay", seconds=0.15, times=100_000)
        proxy.add("POST", lambda _path, _body: True, "delay", seconds=0.4, times=100_000)
        procs = [subprocess.Popen([CIKIT, "promote", f"churn-model=={V}", "--json"], cwd=product_repo, text=True,
                                  env={**env, "CI_KIT_INDEX_URL": proxy.url, "GITHUB_ACTOR": f"run{n}"},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(4)]
        outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    stable = _release(fresh_user, "stable")
    assert {(f.basename, f.sha256) for f in stable.files} == {(f.basename, f.sha256) for f in _release(fresh_user).files}
    assert _promotion_records(fresh_user, stable) == {f.basename: 1 for f in stable.files}, outs
    idx = fresh_user.index()
    by = {idx.read_result(link)["ci_kit"]["by"] for f in stable.files for link in stable.results_for(f)
          if idx.read_result(link)["ci_kit"]["kind"] == "promotion"}
    assert len(by) == 1, by
    winner = by.pop()
    said = [json.loads(out) for out, _ in outs]
    assert sum(1 for o in said if f"already promoted by {winner}" in o["gate"]) >= 1, outs  # the slow proxy made them meet
    for n, (o, (_, err)) in enumerate(zip(said, outs, strict=True)):
        if f"run{n}" == winner:
            assert not o["already"] and "already promoted by" not in err, err
        else:  # it lost the election, or came after the promotion: either way it changed nothing
            assert o["already"] and not o["changed"], o
    row = json.loads(run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env).stdout)["versions"][0]
    assert [p["by"] for p in row["promoted"]] == [winner], row["promoted"]


# -- 9. malformed records -------------------------------------------------------------------------

def test_malformed_records_are_ignored_with_a_warning_never_a_crash(fresh_user, product_repo):
    env = _push(fresh_user, product_repo)
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    idx = fresh_user.index()
    for f in _release(fresh_user).files:
        good = _forged(f, commit=commit, python=_py())
        bad_passed = json.loads(json.dumps(good))
        bad_passed["ci_kit"]["passed"] = "false"
        for rec in ([1, 2], {"ci_kit": "x"}, {"ci_kit": {"schema": 2, "kind": "test"}}, bad_passed):
            idx.attach_result(f, rec)
    for args in (("promote",), ("promote", "--force"), ("status",)):
        r = run_cikit(*args, f"churn-model=={V}" if args[0] == "promote" else "churn-model", cwd=product_repo, env=env)
        assert "Traceback" not in r.output and "internal error" not in r.output, r.output
    r = run_cikit("promote", f"churn-model=={V}", "--dry-run", cwd=product_repo, env=env)
    assert "ci_kit.passed is not a boolean" in r.stderr or "ignored" in r.stderr


# -- 10. partial releases and corrupted dist files -----------------------------------------------

def test_a_partial_release_is_refused_until_job_1_completes_it(fresh_user, product_repo):
    env = _env(fresh_user)
    assert run_cikit("build", cwd=product_repo, env=env).returncode == 0
    idx = fresh_user.index()
    from ci_kit.dists import read_metadata

    wheel = next(iter((product_repo / "dist").glob("*.whl")))
    idx.upload(f"{fresh_user.user}/unstable", wheel, read_metadata(wheel))  # job 1 died after one upload
    for verb in ("test", "test-and-promote"):
        r = run_cikit(verb, f"churn-model=={V}", cwd=product_repo, env=env)
        assert r.returncode == 7, r.output
        assert "is incomplete" in error_line(r) and "has no build record" in r.stderr
    r = run_cikit("promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 10 and "no build record" in error_line(r), r.output
    assert run_cikit("push", cwd=product_repo, env=env).returncode == 0  # the re-run completes it
    r = run_cikit("test-and-promote", f"churn-model=={V}", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output


def test_a_corrupted_dist_file_is_not_uploaded(fresh_user, product_repo):
    env = _env(fresh_user)
    assert run_cikit("build", cwd=product_repo, env=env).returncode == 0
    wheel = next(iter((product_repo / "dist").glob("*.whl")))
    wheel.write_bytes(wheel.read_bytes()[:-10])
    r = run_cikit("push", cwd=product_repo, env=env)
    assert r.returncode == 4, r.output
    assert "the build manifest says" in error_line(r)
    assert _release(fresh_user) is None


# -- 11. one checkout, concurrent test runs --------------------------------------------------------

def test_concurrent_test_runs_in_one_checkout_attach_to_their_own_release(fresh_user, product_repo):
    versions = ["1.2.1", "1.2.2", "1.2.3"]
    for v in versions:
        r = run_cikit("build-and-push", cwd=product_repo, env={**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": v})
        assert r.returncode == 0, r.output
    procs = [subprocess.Popen([CIKIT, "test", f"churn-model=={v}"], cwd=product_repo, env=fresh_user.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for v in versions]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    idx = fresh_user.index()
    for v in versions:
        rel = _release(fresh_user, version=v)
        for f in rel.files:
            tests = [idx.read_result(link)["ci_kit"] for link in rel.results_for(f)]
            tests = [t for t in tests if t["kind"] == "test"]
            assert len(tests) == 1 and tests[0]["sha256"] == f.sha256 and tests[0]["filename"] == f.basename


def test_server_start_closes_an_index_it_manages(fresh_user, devpi):
    """An index of the user that others may write is brought back to owner-only."""
    idx = fresh_user.index()
    unstable = f"{fresh_user.user}/unstable"
    cfg = {k: v for k, v in idx.index_config(unstable).items() if k not in ("projects", "type")}
    idx.request("PATCH", unstable, json={**cfg, "acl_toxresult_upload": [":ANONYMOUS:"], "acl_upload": [":AUTHENTICATED:"]})
    port = devpi.url.rsplit(":", 1)[1]
    r = run_cikit("server", "start", env={**fresh_user.env, "CI_KIT_SERVER_DIR": str(devpi.server_dir), "CI_KIT_SERVER_PORT": port})
    assert r.returncode == 0, r.output
    after = idx.index_config(unstable)
    assert after["acl_toxresult_upload"] == [fresh_user.user] and after["acl_upload"] == [fresh_user.user]
    assert after["volatile"] is True
