"""The two-job flow end to end on a real devpi-server, and re-runs that change nothing."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import error_line, git, run_cikit


def read_outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_two_jobs_promote_tested_bytes_and_reruns_change_nothing(fresh_user, product_repo, tmp_path):  # noqa: PLR0915 - one story, told in order
    env, user = fresh_user.env, fresh_user.user
    out1 = tmp_path / "job1.out"
    r = run_cikit("build-and-push", "--output", str(out1), cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    o = read_outputs(out1)
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    assert o["commit"] == commit and o["index"] == f"{user}/unstable"
    assert r.stdout.strip().splitlines()[-1] == o["requirement"] == f"churn-model=={o['version']}"
    files = json.loads(o["files"])
    assert sorted(f["filename"].rsplit(".", 1)[-1] for f in files) == ["gz", "whl"]

    idx = fresh_user.index()
    unstable = idx.release(f"{user}/unstable", "churn-model", o["version"])
    assert {f.basename: f.sha256 for f in unstable.files} == {f["filename"]: f["sha256"] for f in files}

    # job 2 on "another agent": only the requirement and the commit travel
    out2 = tmp_path / "job2.out"
    summary = tmp_path / "summary.md"
    r = run_cikit("test-and-promote", o["requirement"], "--commit", commit, "--output", str(out2),
                  "--junit-dir", str(tmp_path / "junit"), "--summary", str(summary), cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    md = summary.read_text()
    assert f"### ci-kit test: `{o['requirement']}`" in md and f"| {_py()} | ✅ passed | 4 | 0 | 0 |" in md
    assert f"promoted to `{user}/testing`" in md
    o2 = read_outputs(out2)
    assert o2["promoted_to"] == f"{user}/testing"  # an untagged commit is a dev+local version
    junit = sorted(p.name for p in (tmp_path / "junit").glob("*.xml"))
    assert junit == [f"junit-py{_py()}-sdist.xml", f"junit-py{_py()}-wheel.xml"]
    assert 'tests="4"' in (tmp_path / "junit" / junit[1]).read_text()
    assert f'name="churn-model Python {_py()} wheel"' in (tmp_path / "junit" / junit[1]).read_text()  # CI tells runs apart

    testing = idx.release(f"{user}/testing", "churn-model", o["version"])
    assert {f.basename: f.sha256 for f in testing.files} == {f["filename"]: f["sha256"] for f in files}
    assert idx.release(f"{user}/stable", "churn-model", o["version"]) is None

    # the result records carry ci-kit's fields, for the exact bytes, and prove the install was tested
    from ci_kit.evidence import check

    wheel = next(f for f in unstable.files if f.kind == "wheel")
    fresh = idx.release(f"{user}/unstable", "churn-model", o["version"])
    recs = [idx.read_result(link) for link in fresh.results_for(wheel)]
    assert [r["ci_kit"]["kind"] for r in recs] == ["build", "test"]  # job 1's build record, then the run's
    assert recs[0]["ci_kit"]["commit"] == commit
    ck = recs[1]["ci_kit"]
    assert ck["sha256"] == wheel.sha256 and ck["commit"] == commit and ck["passed"] and ck["tests"] == 4 and ck["counted"]
    assert "/site-packages/churn_model/" in ck["proof"]["churn_model"]
    assert ck["metrics"]["held_out_accuracy"] >= 0.7
    assert check(recs[1]) is None
    # on the target: the gated bytes with the evidence they passed on, and who promoted
    kinds = [idx.read_result(link)["ci_kit"]["kind"] for link in testing.results_for(testing.file(wheel.basename))]
    assert sorted(kinds) == ["build", "claim", "promotion", "test"]  # claim: the run's claim to promote (claims.py)

    # re-runs: job 1 rebuilds the same bytes (no collision), promote is a no-op success
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    assert "already on" in r.stderr and "0 uploaded" in r.stderr
    r = run_cikit("promote", o["requirement"], "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    assert json.loads(r.stdout)["changed"] is False
    # re-testing adds a record and changes no file
    r = run_cikit("test", o["requirement"], "--commit", commit, "--junit-dir", "rel-junit", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    # a relative --junit-dir is the caller's, not the clone's: pytest's own per-test XML lands there
    assert (product_repo / "rel-junit" / f"junit-py{_py()}-wheel.xml").read_text().count("<testcase") == 4
    again = idx.release(f"{user}/unstable", "churn-model", o["version"])
    assert [f.sha256 for f in again.files] == [f.sha256 for f in unstable.files]
    assert len(again.results_for(next(f for f in again.files if f.kind == "wheel"))) == 3

    r = run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    row = json.loads(r.stdout)["versions"][0]
    assert set(row["indexes"]) == {"unstable", "testing"}
    assert row["tests"] == {f"py{_py()}": "passed", f"py{_py()} (sdist)": "passed"}
    assert row["promoted"][0]["to"] == f"{user}/testing" and row["promoted"][0]["forced"] is False
    r = run_cikit("status", "churn-model", cwd=product_repo, env=env)
    assert "passed" in r.stdout and f"{user}/testing by" in r.stdout


def test_tagged_commit_goes_to_stable_via_run(fresh_user, product_repo):
    git("tag", "v1.0.0", cwd=product_repo)
    r = run_cikit("run", "--json", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 0, r.output
    data = json.loads(r.stdout)
    assert data["requirement"] == "churn-model==1.0.0"
    assert data["promoted_to"] == f"{fresh_user.user}/stable"
    idx = fresh_user.index()
    assert idx.release(f"{fresh_user.user}/stable", "churn-model", "1.0.0") is not None
    assert idx.index_config(f"{fresh_user.user}/stable")["volatile"] is False
    # the whole flow again on the same commit: success, nothing changes
    r = run_cikit("run", "--json", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 0, r.output
    assert json.loads(r.stdout)["changed"] is False


def _py() -> str:
    import sys

    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_tox_env_runs_tox_with_the_exact_file(fresh_user, product_repo):
    """With tox-env, tox runs the product's own tox.ini against `--installpkg FILE`."""
    (product_repo / "tox.ini").write_text("[testenv]\nextras = test\ncommands = pytest {posargs}\n")
    git("add", "tox.ini", cwd=product_repo)
    git("commit", "-qm", "tox", cwd=product_repo)
    env = {**fresh_user.env, "CI_KIT_TOX_ENV": "py{py}"}
    r = run_cikit("run", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    runs = json.loads(r.stdout)["tests"]["runs"]
    assert [run["kind"] for run in runs] == ["wheel", "sdist"]
    record = json.loads(Path(runs[0]["record_path"]).read_text())
    py = _py().replace(".", "")
    assert record["testenvs"][f"py{py}"]["test"][0]["command"] == [f"tox run -e py{py}"]
    assert f"/tox-py{_py()}-wheel/py{py}/lib/" in record["ci_kit"]["proof"]["churn_model"]
    assert record["ci_kit"]["tests"] == 4


def test_built_files_are_tested_without_any_index_and_never_count_for_promotion(fresh_user, product_repo, tmp_path):
    """A pull request's build-only mode: `ci-kit build`, then `ci-kit test --dist dist`
    with no credential. The built bytes are installed and tested as job 2 would (same
    JUnit naming, the sdist once), nothing reaches any index, and those results cannot
    open the gate: pushed afterwards, the same files are refused promotion (exit 10)
    until job 2 tests them from the index. A failing test in the built files is exit 9."""
    no_secret = {k: v for k, v in fresh_user.env.items() if k != "CI_KIT_PASSWORD"}
    user, idx = fresh_user.user, fresh_user.index()
    r = run_cikit("build", "--json", cwd=product_repo, env=no_secret)
    assert r.returncode == 0, r.output
    built = json.loads(r.stdout)
    summary = tmp_path / "summary.md"
    r = run_cikit("test", "--dist", "dist", "--junit-dir", str(tmp_path / "junit"), "--summary", str(summary), "--json",
                  cwd=product_repo, env=no_secret)
    assert r.returncode == 0, r.output
    report = json.loads(r.stdout)
    assert (report["requirement"], report["commit"], report["passed"], report["attached"]) == (
        built["requirement"], built["commit"], True, False)
    assert sorted((run["filename"], run["sha256"], run["python"]) for run in report["runs"]) == sorted(
        (f["filename"], f["sha256"], _py()) for f in built["files"])
    for f in built["files"]:  # each file hashed where it is installed from
        assert f"{f['filename']} from {product_repo / 'dist'}, sha256 {f['sha256']}" in r.stderr
    junit = sorted(p.name for p in (tmp_path / "junit").glob("*.xml"))
    assert junit == [f"junit-py{_py()}-sdist.xml", f"junit-py{_py()}-wheel.xml"]  # job 2's names
    assert f'name="churn-model Python {_py()} wheel"' in (tmp_path / "junit" / junit[1]).read_text()
    assert 'tests="4"' in (tmp_path / "junit" / junit[1]).read_text()
    md = summary.read_text()
    assert "the built files (not uploaded)" in md and f"| {_py()} | ✅ passed | 4 | 0 | 0 |" in md
    for name in ("unstable", "testing", "stable"):
        assert idx.projects(f"{user}/{name}") == [], name

    # the local results are nowhere the gate looks: the same bytes, pushed, are not promotable
    r = run_cikit("push", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 0, r.output
    r = run_cikit("promote", built["requirement"], cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 10, r.output
    assert idx.release(f"{user}/testing", "churn-model", built["version"]) is None

    # a failing test in the built files: exit 9, named in the summary, still nothing uploaded
    test_file = min((product_repo / "tests").glob("test_*.py"))
    with test_file.open("a") as fh:
        fh.write("\n\ndef test_made_to_fail_in_the_built_files():\n    assert False, 'made to fail'\n")
    git("commit", "-qam", "a failing test", cwd=product_repo)
    r = run_cikit("build", "--json", cwd=product_repo, env=no_secret)
    assert r.returncode == 0, r.output
    failing = json.loads(r.stdout)
    failed_summary = tmp_path / "failed.md"
    r = run_cikit("test", "--dist", "dist", "--summary", str(failed_summary), cwd=product_repo, env=no_secret)
    assert r.returncode == 9, r.output
    assert error_line(r).startswith(f"ci-kit: error: {failing['requirement']}: ")
    assert f"::test_made_to_fail_in_the_built_files` (wheel, Python {_py()})" in failed_summary.read_text()
    assert idx.release(f"{user}/unstable", "churn-model", failing["version"]) is None
