"""Same version, different bytes: a clear error naming both sha256s, and nothing changes.
Promotion checks every file against the target before copying any."""

from __future__ import annotations

import json

from conftest import error_line, git, run_cikit


def _change_and_commit(repo, text="# retrained\n"):
    model = repo / "src" / "churn_model" / "model.py"
    model.write_text(model.read_text() + text)
    git("commit", "-qam", "change", cwd=repo)


def test_push_collision_on_unstable_names_both_hashes_and_changes_nothing(fresh_user, product_repo):
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.0"}
    r = run_cikit("build-and-push", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    first = {f["filename"]: f["sha256"] for f in json.loads(r.stdout)["files"]}

    _change_and_commit(product_repo)
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 8, r.output
    err = [error_line(r)]
    assert err[0].startswith("ci-kit: error: churn-model==2.0.0 is already on")
    new = json.loads((product_repo / "dist" / "ci-kit-build.json").read_text())
    for f in new["files"]:
        assert first[f["filename"]] in err[0] and f["sha256"] in err[0]
    assert "setuptools_scm" in r.stderr  # the hint says how to make versions unique
    rel = fresh_user.index().release(f"{fresh_user.user}/unstable", "churn-model", "2.0.0")
    assert {f.basename: f.sha256 for f in rel.files} == first


def test_promote_collision_on_target_changes_nothing(fresh_user, product_repo):
    """The target holds other bytes for the version: refuse before copying anything."""
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "3.0.0"}
    user = fresh_user.user
    assert run_cikit("run", cwd=product_repo, env=env).returncode == 0
    idx = fresh_user.index()
    stable_before = {f.basename: f.sha256 for f in idx.release(f"{user}/stable", "churn-model", "3.0.0").files}

    # unstable is volatile: replace the release there with other bytes of the same version
    idx.request("DELETE", f"{user}/unstable/churn-model/3.0.0")
    _change_and_commit(product_repo)
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    r = run_cikit("test-and-promote", "churn-model==3.0.0", "--commit", commit, cwd=product_repo, env=env)
    assert r.returncode == 8, r.output
    assert f"already on {user}/stable with different bytes" in r.stderr
    assert all(sha in r.stderr for sha in stable_before.values())
    after = {f.basename: f.sha256 for f in idx.release(f"{user}/stable", "churn-model", "3.0.0").files}
    assert after == stable_before


def test_promote_completes_a_target_holding_part_of_the_release(fresh_user, product_repo):
    """A target holding the gated bytes of only some files (an interrupted copy) is
    completed, with the evidence attached to every file; nothing else changes."""
    env = {**fresh_user.env, "SETUPTOOLS_SCM_PRETEND_VERSION": "4.0.0"}
    user = fresh_user.user
    r = run_cikit("build-and-push", "--json", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    assert run_cikit("test", "churn-model==4.0.0", cwd=product_repo, env=env).returncode == 0
    idx = fresh_user.index()
    from ci_kit.dists import read_metadata

    wheel = next((product_repo / "dist").glob("*.whl"))
    idx.upload(f"{user}/stable", wheel, read_metadata(wheel))
    r = run_cikit("promote", "churn-model==4.0.0", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    assert "1 file(s) downloaded" in r.stderr
    stable = idx.release(f"{user}/stable", "churn-model", "4.0.0")
    unstable = idx.release(f"{user}/unstable", "churn-model", "4.0.0")
    assert {f.basename: f.sha256 for f in stable.files} == {f.basename: f.sha256 for f in unstable.files}
    for f in stable.files:
        kinds = sorted(idx.read_result(link)["ci_kit"]["kind"] for link in stable.results_for(f))
        assert [k for k in kinds if k != "claim"] == ["build", "promotion", "test"]  # claim: promote's, on one file (claims.py)
