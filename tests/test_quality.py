"""The quality gate against a real devpi-server: each refusal with its one line (the input
checks also from a Parquet reference file profiled in a real test run), an improved
version passes, the first release passes the relative checks, --force is recorded, and the
evaluation record travels to stable with the release.

The candidates' test records are attached as the trusted CI user would attach them (the
gate reads nothing else); test_quality_flow.py makes them with real test runs.
"""

from __future__ import annotations

import json
import os
import random
import sys

import pytest

from conftest import Devpi, error_line, git, make_repo, make_user, run_cikit

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
REF = {"name": "held-out", "sha256": "ab" * 32}
RULES = {"metrics": {"auc": {"min": 0.6, "max-drop": 0.02}},
         "responses": {"measure": "psi", "max-shift": 0.25, "max-undecided": 0.3},
         "inputs": {"new-categories": "refuse", "max-missing-increase": 0.05}}


def scores(centre_low: float, centre_high: float, seed: int = 1, n: int = 200) -> list[float]:
    """A classifier's scores: half the rows around centre_low, half around centre_high."""
    rnd = random.Random(seed)
    return [round(min(1.0, max(0.0, rnd.gauss(c, 0.08))), 5) for c in [centre_low] * (n // 2) + [centre_high] * (n // 2)]


def evaluation(auc: float = 0.85, low: float = 0.15, high: float = 0.85, contract=("month", "year"), missing: float = 0.0,
               seed: int = 1) -> dict:
    return {"schema": 1, "metrics": {"auc": auc, "rows": 200},
            "responses": {"kind": "probability", "reference": REF, "scores": scores(low, high, seed)},
            "inputs": {"columns": {"contract": {"missing": 0.0, "categories": list(contract)},
                                   "tenure": {"missing": missing, "quantiles": {"p50": 30}}}}}


def push_with(env: dict, repo, idx, user: str, version: str, ev: dict) -> None:
    """Job 1 for `version`, then a passing test record carrying `ev` on each file, as job 2 attaches it."""
    from ci_kit import results

    r = run_cikit("build-and-push", cwd=repo, env={**env, "SETUPTOOLS_SCM_PRETEND_VERSION": version})
    assert r.returncode == 0, r.output
    rel = idx.release(f"{user}/unstable", "churn-model", version)
    commit = git("rev-parse", "HEAD", cwd=repo)
    for f in rel.files:
        idx.attach_result(f, results.test_record(
            filename=f.basename, sha256=f.sha256, commit=commit, python=PY, python_full=PY + ".0", executable="python",
            command=["pytest"], retcode=0, output="", counts={"tests": 4}, counted=True, junit="", metrics=ev["metrics"],
            proof={}, duration=1.0, evaluation=ev))


def promote(env: dict, repo, version: str, *flags: str):
    return run_cikit("promote", f"churn-model=={version}", *flags, cwd=repo, env=env)


def stable_versions(idx, user: str) -> set[str]:
    return set(idx.releases(f"{user}/stable", "churn-model"))


@pytest.fixture(scope="module")
def with_baseline(devpi: Devpi, tmp_path_factory):
    """A user whose stable index holds churn-model 1.0.0 with a good evaluation record."""
    user = f"q{os.getpid()}"
    password = f"pw-{user}-Zq9x"
    idx = make_user(devpi.url, user, password)
    env = {**devpi.env, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password, "CI_KIT_QUALITY": json.dumps(RULES)}
    repo = make_repo(tmp_path_factory.mktemp("quality") / "churn-model")
    push_with(env, repo, idx, user, "1.0.0", evaluation())
    r = promote(env, repo, "1.0.0")
    assert r.returncode == 0, r.output
    return env, repo, idx, user


@pytest.mark.parametrize("version, ev, expected", [
    ("2.0.1", evaluation(auc=0.80),
     "metric auc is 0.8 on 2.0.1; baseline 1.0.0 ({user}/stable) has 0.85; allowed drop 0.02 (bound 0.83)"),
    ("2.0.2", evaluation(auc=0.55),
     ("metric auc is 0.55 on 2.0.2, below the minimum 0.6; baseline 1.0.0 ({user}/stable) has 0.85; "
      "metric auc is 0.55 on 2.0.2; baseline 1.0.0 ({user}/stable) has 0.85; allowed drop 0.02 (bound 0.83)")),
    ("2.0.3", evaluation(low=0.35, high=0.95),
     "responses: psi {psi} between 2.0.3 and baseline 1.0.0 ({user}/stable) on reference set abababababab…; bound 0.25"),
    ("2.0.4", evaluation(low=0.42, high=0.58),  # (its shift is bounded too: the rules below leave that out)
     "responses: {share} of 2.0.4's scores are undecided (in [0.4, 0.6]); baseline 1.0.0 ({user}/stable) has 0.0%; bound 30.0%"),
    ("2.0.5", evaluation(contract=("month", "year", "weekly")),
     "inputs: column contract has new categories 'weekly' in 2.0.5, not in baseline 1.0.0 ({user}/stable); new-categories = refuse"),
    ("2.0.6", evaluation(missing=0.12),
     "inputs: column tenure missing rate 12.0% in 2.0.6; baseline 1.0.0 ({user}/stable) has 0.0%; allowed increase 5.0%"),
], ids=["regressed-metric", "below-minimum", "shifted-responses", "confused-classifier", "new-category", "missing-jump"])
def test_each_quality_refusal_names_metric_values_baseline_and_bound(with_baseline, version, ev, expected):
    from ci_kit.quality import measures
    from ci_kit.quality.schema import validate

    env, repo, idx, user = with_baseline
    push_with(env, repo, idx, user, version, ev)
    if version == "2.0.4":  # a confused classifier's scores also shift: check the undecided share alone
        env = {**env, "CI_KIT_QUALITY": json.dumps({**RULES, "responses": {"max-undecided": 0.3}})}
    r = promote(env, repo, version)
    assert r.returncode == 10, r.output
    base = validate(evaluation())["responses"]
    psi = f"{measures.shift('psi', validate(ev)['responses'], base):.4f}"
    share = f"{measures.undecided(ev['responses'], (0.4, 0.6)):.1%}"
    line = error_line(r)
    assert line == (f"ci-kit: error: churn-model=={version} cannot be promoted: quality gate: "
                    + expected.format(user=user, psi=psi, share=share)), line
    assert stable_versions(idx, user) == {"1.0.0"}  # nothing copied


def test_inputs_profiled_from_a_parquet_file_feed_the_new_category_and_missing_value_gates(with_baseline, tmp_path):
    """A real test run whose evaluate-command names a Parquet reference file of the
    repository: ci-kit profiles it into the test record, and the gate refuses the new
    category and the missing-value jump it shows against the baseline's profile. Without
    pyarrow the run stops with one line saying what to install."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ci_kit import evidence

    env, repo, idx, user = with_baseline
    (repo / "data").mkdir()
    contract = ["month", "year", "weekly", "month", "year"] * 10  # 'weekly' is new
    tenure = [None if i % 25 < 3 else 5 + i for i in range(50)]  # 6 of 50 missing: 12.0%
    pq.write_table(pa.table({"contract": contract, "tenure": pa.array(tenure, pa.int32())}),
                   repo / "data" / "reference.parquet")
    (repo / "evaluation.json").write_text(json.dumps({**evaluation(), "inputs": {"parquet": "data/reference.parquet"}}))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "evaluation on a Parquet reference file", cwd=repo)
    r = run_cikit("build-and-push", cwd=repo, env={**env, "SETUPTOOLS_SCM_PRETEND_VERSION": "2.0.7"})
    assert r.returncode == 0, r.output
    copy = "python -c \"import os, shutil; shutil.copy('evaluation.json', os.environ['CI_KIT_METRICS_FILE'])\""
    env = {**env, "CI_KIT_EVALUATE_COMMAND": copy}
    # where ci-kit runs without pyarrow (a module that fails to import stands in for it): exit 2, nothing attached
    (tmp_path / "no-pyarrow" / "pyarrow").mkdir(parents=True)
    (tmp_path / "no-pyarrow" / "pyarrow" / "__init__.py").write_text("raise ImportError('pyarrow is not installed')\n")
    r = run_cikit("test", "churn-model==2.0.7", cwd=repo, env={**env, "PYTHONPATH": str(tmp_path / "no-pyarrow")})
    assert r.returncode == 2, r.output
    assert error_line(r) == ("ci-kit: error: reading a Parquet reference file (inputs.parquet) needs pyarrow, "
                             "which is not installed: install ci-kit[quality]")
    rel = idx.release(f"{user}/unstable", "churn-model", "2.0.7")  # read again: a Release is a snapshot of its links
    assert not [t for f in rel.files for t in evidence.read(idx, rel, f, frozenset([user])).of("test", f.sha256)]
    r = run_cikit("test", "churn-model==2.0.7", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    rel = idx.release(f"{user}/unstable", "churn-model", "2.0.7")
    profiles = [t.fields["evaluation"]["inputs"] for f in rel.files
                for t in evidence.read(idx, rel, f, frozenset([user])).of("test", f.sha256)]
    assert len(profiles) == len(rel.files) and all(p == profiles[0] for p in profiles)  # on the index, one per run
    assert profiles[0]["source"] == "data/reference.parquet" and profiles[0]["rows"] == 50
    assert profiles[0]["columns"]["contract"] == {"missing": 0.0, "categories": ["month", "weekly", "year"]}
    assert profiles[0]["columns"]["tenure"]["missing"] == 0.12 and profiles[0]["columns"]["tenure"]["quantiles"]["min"] == 8
    r = promote(env, repo, "2.0.7")
    assert r.returncode == 10, r.output
    assert error_line(r) == (
        f"ci-kit: error: churn-model==2.0.7 cannot be promoted: quality gate: inputs: column contract has new categories "
        f"'weekly' in 2.0.7, not in baseline 1.0.0 ({user}/stable); new-categories = refuse; inputs: column tenure missing "
        f"rate 12.0% in 2.0.7; baseline 1.0.0 ({user}/stable) has 0.0%; allowed increase 5.0%")
    assert stable_versions(idx, user) == {"1.0.0"}


def test_an_improved_version_passes_and_its_record_is_on_stable(with_baseline):
    from ci_kit import evidence

    env, repo, idx, user = with_baseline
    push_with(env, repo, idx, user, "3.0.0", evaluation(auc=0.86, seed=2))
    r = promote(env, repo, "3.0.0", "--json")
    assert r.returncode == 0, r.output
    assert "quality: metric auc 0.86 vs baseline 0.85 (bound 0.83)" in r.stderr
    rel = idx.release(f"{user}/stable", "churn-model", "3.0.0")
    for f in rel.files:
        recs = evidence.read(idx, rel, f, frozenset([user]))
        assert [r.fields["evaluation"]["metrics"]["auc"] for r in recs.of("test", f.sha256)] == [0.86]
        [promo] = recs.of("promotion", f.sha256)
        assert promo.fields["forced"] is False and promo.fields["quality"]["passed"] is True
        assert "baseline 1.0.0" in promo.fields["quality"]["lines"][0]


def test_first_release_passes_the_relative_checks_and_says_so(fresh_user, product_repo):
    env = {**fresh_user.env, "CI_KIT_QUALITY": json.dumps(RULES)}
    idx = fresh_user.index()
    push_with(env, product_repo, idx, fresh_user.user, "0.1.0", evaluation(auc=0.7))
    r = promote(env, product_repo, "0.1.0")
    assert r.returncode == 0, r.output
    assert f"promote: quality: no baseline on {fresh_user.user}/stable: first release, relative checks pass" in r.stderr
    # absolute bounds still hold without a baseline
    push_with(env, product_repo, idx, fresh_user.user, "0.0.9", evaluation(auc=0.5))
    r = promote({**env, "CI_KIT_QUALITY": json.dumps({**RULES, "baseline": "none"})}, product_repo, "0.0.9")
    assert r.returncode == 10 and "metric auc is 0.5 on 0.0.9, below the minimum 0.6" in error_line(r)


def test_force_past_the_quality_gate_is_recorded(fresh_user, product_repo):
    env = {**fresh_user.env, "CI_KIT_QUALITY": json.dumps(RULES), "GITHUB_ACTOR": "alice"}
    idx = fresh_user.index()
    push_with(env, product_repo, idx, fresh_user.user, "1.0.0", evaluation())
    assert promote(env, product_repo, "1.0.0").returncode == 0
    push_with(env, product_repo, idx, fresh_user.user, "1.1.0", evaluation(auc=0.7))
    r = promote(env, product_repo, "1.1.0", "--force", "--json")
    assert r.returncode == 0, r.output
    assert json.loads(r.stdout)["forced"] is True
    assert "FORCED past the quality gate by alice: metric auc is 0.7 on 1.1.0" in r.stderr
    r = run_cikit("status", "churn-model", "--json", cwd=product_repo, env=env)
    row = json.loads(r.stdout)["versions"][0]
    assert row["version"] == "1.1.0" and row["promoted"][0]["forced"] is True and row["promoted"][0]["by"] == "alice"


def test_a_bad_quality_table_is_a_configuration_error(fresh_user, product_repo):
    bad = {"metrics": {"auc": {"minimum": 0.7}}}
    r = run_cikit("promote", "churn-model==1.0.0", cwd=product_repo, env={**fresh_user.env, "CI_KIT_QUALITY": json.dumps(bad)})
    assert r.returncode == 2
    assert "environment CI_KIT_QUALITY: `quality` must be a table whose keys are" in error_line(r)
    assert "(quality.metrics.auc.minimum is not one)" in error_line(r)
