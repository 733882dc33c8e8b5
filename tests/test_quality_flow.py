"""The quality gate on the example with real test runs: version 1 goes to stable with its
evaluation record (the input profile computed by ci-kit from the CSV it names), a worse
version 2 is refused with one line, a malformed evaluation file fails the run, `status`
shows the headline metric, and `ci-kit report` is opened in headless chromium."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cdp import CHROMIUM, Browser
from conftest import ROOT, Devpi, error_line, git, make_repo, make_user, require, run_cikit

ARTIFACTS = ROOT / "ci-kit-results"  # kept by CI with the other results


def worse_model(repo) -> None:
    """Version 2: trained for 80 epochs instead of 400; its own tests still pass (accuracy 0.74 >= 0.70)."""
    train = repo / "src" / "churn_model" / "train.py"
    train.write_text(train.read_text().replace("fit(train_rows)", "fit(train_rows, epochs=80)"))
    subprocess.run([sys.executable, "-m", "churn_model.train"], cwd=repo, check=True, capture_output=True,
                   env={"PYTHONPATH": str(repo / "src")})
    git("commit", "-qam", "fewer epochs", cwd=repo)
    git("tag", "v2.0.0", cwd=repo)


@pytest.fixture(scope="module")
def flow(devpi: Devpi, tmp_path_factory):
    user = f"qf{os.getpid()}"
    password = f"pw-{user}-Zq9x"
    idx = make_user(devpi.url, user, password)
    env = {**devpi.env, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password}
    repo = make_repo(tmp_path_factory.mktemp("qflow") / "churn-model", quality=True)
    git("tag", "v1.0.0", cwd=repo)
    first = run_cikit("run", cwd=repo, env=env)
    worse_model(repo)
    second = run_cikit("run", cwd=repo, env=env)
    return env, repo, idx, user, first, second


def test_version_1_is_promoted_with_its_evaluation_record(flow):
    from ci_kit import evidence

    _env, repo, idx, user, first, _ = flow
    assert first.returncode == 0, first.output
    assert f"quality: no baseline on {user}/stable: first release, relative checks pass" in first.stderr
    rel = idx.release(f"{user}/stable", "churn-model", "1.0.0")
    for f in rel.files:
        [test] = list(evidence.read(idx, rel, f, frozenset([user])).of("test", f.sha256))
        ev = test.fields["evaluation"]
        assert ev["metrics"]["held_out_accuracy"] == 0.8 and len(ev["responses"]["scores"]) == 80
        assert test.fields["commit"] == git("rev-parse", "v1.0.0", cwd=repo) and test.fields["python"]
        profile = ev["inputs"]
        assert profile["source"] == "src/churn_model/churn.csv" and profile["rows"] == 400
        assert profile["columns"]["contract"] == {"missing": 0.0, "categories": ["month", "two-year", "year"]}
        assert set(profile["columns"]["tenure_months"]["quantiles"]) == {"min", "p05", "p25", "p50", "p75", "p95", "max"}


def test_a_worse_version_2_is_refused_by_the_quality_gate(flow):
    env, repo, idx, user, _, second = flow
    assert second.returncode == 10, second.output
    line = error_line(second)
    assert line.startswith("ci-kit: error: churn-model==2.0.0 cannot be promoted: quality gate: "
                           f"metric held_out_accuracy is 0.7375 on 2.0.0; baseline 1.0.0 ({user}/stable) has 0.8; "
                           "allowed drop 0.02 (bound 0.78)"), line
    assert "scores are undecided (in [0.4, 0.6])" in line
    assert set(idx.releases(f"{user}/stable", "churn-model")) == {"1.0.0"}
    r = run_cikit("status", "churn-model", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    header, _, v2, v1 = r.stdout.splitlines()[1:5]
    assert "held_out_accuracy" in header and "0.7375" in v2 and "0.8 " in v1


def test_the_test_stage_measures_the_shift_so_promote_needs_no_scipy(flow):
    """The shift against 1.0.0 is stored in 2.0.0's test record (quality/shift.py), and a
    promote that finds the same baseline takes it: scipy is not even imported."""
    from ci_kit import evidence
    from ci_kit.quality import shift

    env, repo, idx, user, _, second = flow
    assert f"test: quality: the response shift is measured against baseline 1.0.0 ({user}/stable), for the gate" in second.stderr
    v1 = idx.release(f"{user}/stable", "churn-model", "1.0.0")
    [base] = evidence.read(idx, v1, v1.files[0], frozenset([user])).of("test", v1.files[0].sha256)
    rel = idx.release(f"{user}/unstable", "churn-model", "2.0.0")
    for f in rel.files:
        [test] = evidence.read(idx, rel, f, frozenset([user])).of("test", f.sha256)
        [entry] = test.fields["evaluation"]["shift"]
        assert {k: v for k, v in entry.items() if k != "value"} == {
            "measure": "psi", "bins": 10,
            "baseline": {"index": f"{user}/stable", "version": "1.0.0",
                         "responses": shift.digest(base.fields["evaluation"]["responses"])}}
    r = run_cikit("promote", "churn-model==2.0.0", cwd=repo, env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 10 and "cannot be promoted: quality gate: metric held_out_accuracy" in r.stderr, r.output
    imported = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "ci_kit.quality.gate" in imported and not any(m.split(".")[0] in ("scipy", "numpy") for m in imported)


def test_a_malformed_evaluation_file_fails_the_run_naming_the_field(flow):
    env, repo, _idx, _user, _, _ = flow
    write = ("python -c \"import json, os; json.dump({'schema': 1, 'metrics': {'auc': 'high'}}, "
             "open(os.environ['CI_KIT_METRICS_FILE'], 'w'))\"")
    r = run_cikit("test", "churn-model==2.0.0", cwd=repo, env={**env, "CI_KIT_EVALUATE_COMMAND": write})
    assert r.returncode == 9, r.output
    assert "evaluation file ($CI_KIT_METRICS_FILE): metrics.auc must be a finite number, got 'high'" in error_line(r)
    assert "evaluate-command: python -c" in r.stderr


def test_the_report_renders_in_headless_chromium(flow, tmp_path):
    env, repo, _idx, _user, _, _ = flow
    summary = tmp_path / "summary.md"
    html = tmp_path / "report.html"
    r = run_cikit("report", "churn-model", "--html", str(html), "--summary", str(summary), cwd=repo, env=env)
    assert r.returncode == 0, r.output
    assert r.stdout.strip() == str(html)
    md = summary.read_text()
    assert "| 2.0.0 | ❌ refused | 0.7375 |" in md and "| 1.0.0 | stable | 0.8 |" in md and "-0.0625" in md
    page = html.read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch when viewed
    require(CHROMIUM, "chromium is not installed (apt-get install chromium)")
    browser = Browser(tmp_path / "chromium-profile")
    try:
        browser.load(html.as_uri())
        images = browser.evaluate(_IMAGES_JS)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = browser.screenshot(ARTIFACTS / "quality-report.png")
        print(f"report screenshot: {shot}")
        assert browser.errors() == []
        assert [u for u in browser.requests() if not u.startswith(("file:", "data:"))] == []
    finally:
        browser.close()
    assert len(images) == 2, images  # metrics over versions, responses against the baseline
    for img in images:
        assert img["w"] > 300 and img["h"] > 150 and img["ink"] > 0.02, img
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[0] > 600 and pixels.std() > 0.05  # a page with content, not a blank one


# each image decoded, drawn on a canvas, and its share of non-white pixels measured
_IMAGES_JS = """
Promise.all(Array.from(document.images).map(async (img) => {
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 0; i < d.length; i += 4) { if (d[i] < 230 || d[i + 1] < 230 || d[i + 2] < 230) ink++; }
  return {w: img.naturalWidth, h: img.naturalHeight, ink: ink / (d.length / 4)};
}))
"""
