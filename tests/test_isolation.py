"""Tests run against the installed package, never the checkout; concurrent pipelines
share no client state; the password never reaches argv, output or files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import CIKIT, error_line, git, make_repo, require, run_cikit


def _flat_layout(repo: Path, root_conftest: bool) -> None:
    """Move the package to the repository root, where a careless run would import it."""
    git("mv", "src/churn_model", "churn_model", cwd=repo)
    p = repo / "pyproject.toml"
    p.write_text(p.read_text().replace('[tool.setuptools.package-data]',
                                       '[tool.setuptools.packages.find]\ninclude = ["churn_model*"]\n\n[tool.setuptools.package-data]'))
    if root_conftest:
        (repo / "conftest.py").write_text("# a root conftest makes pytest put the repository root on sys.path\n")
        git("add", "conftest.py", cwd=repo)
    git("commit", "-qam", "flat layout", cwd=repo)


def test_flat_layout_is_still_tested_from_site_packages(fresh_user, product_repo):
    _flat_layout(product_repo, root_conftest=False)
    r = run_cikit("run", "--json", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 0, r.output
    data = json.loads(r.stdout)
    for run in data["tests"]["runs"]:
        proof = json.loads(Path(run["record_path"]).read_text())["ci_kit"]["proof"]
        assert "/site-packages/churn_model/__init__.py" in proof["churn_model"], proof


def test_importing_the_checkout_is_caught_and_nothing_promoted(fresh_user, product_repo):
    _flat_layout(product_repo, root_conftest=True)
    r = run_cikit("run", cwd=product_repo, env=fresh_user.env)
    assert r.returncode == 9, r.output
    assert "the tests imported churn_model from the checkout, not from the installed package" in error_line(r)
    idx = fresh_user.index()
    assert idx.projects(f"{fresh_user.user}/testing") == [] and idx.projects(f"{fresh_user.user}/stable") == []


def test_concurrent_pipelines_share_no_client_state(fresh_user, devpi, tmp_path):
    """Two users' pipelines at once on one machine, one HOME: both succeed, each sees only
    its own release, and no devpi client state is written anywhere."""
    from ci_kit.index import Index

    other = "concurrent2"
    idx = Index(devpi.url, other)
    idx.create_user(other, "pw-concurrent-2x")
    idx.login("pw-concurrent-2x")
    for name, volatile in (("unstable", True), ("testing", False), ("stable", False)):
        idx.create_index(f"{other}/{name}", volatile=volatile)
    home = tmp_path / "home"
    home.mkdir()
    repos = [make_repo(tmp_path / "a"), make_repo(tmp_path / "b")]
    envs = [{**fresh_user.env, "HOME": str(home)},
            {**fresh_user.env, "HOME": str(home), "CI_KIT_USER": other, "CI_KIT_PASSWORD": "pw-concurrent-2x"}]
    procs = [subprocess.Popen([CIKIT, "run", "--json"], cwd=r, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r, e in zip(repos, envs, strict=False)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    promoted = [json.loads(o[0])["promoted_to"] for o in outs]
    assert promoted == [f"{fresh_user.user}/testing", f"{other}/testing"]
    assert list(home.iterdir()) == [] or not any((home / d).exists() for d in (".devpi", ".config/devpi"))
    assert fresh_user.index().projects(f"{fresh_user.user}/testing") == ["churn-model"]
    assert idx.projects(f"{other}/testing") == ["churn-model"]


def test_password_never_in_argv_output_or_files(fresh_user, product_repo, tmp_path):
    require(shutil.which("strace"), "strace is needed to see every child's argv (apt-get install strace)")
    secret = fresh_user.password
    # a product test that prints its whole environment: the password must not be there
    (product_repo / "tests" / "test_env.py").write_text(
        "import os\n\ndef test_print_env():\n    print(dict(os.environ))\n    assert 'CI_KIT_PASSWORD' not in os.environ\n")
    git("add", "tests/test_env.py", cwd=product_repo)
    git("commit", "-qm", "env test", cwd=product_repo)
    trace = tmp_path / "execve.trace"
    outputs = tmp_path / "outputs.txt"
    proc = subprocess.run(["strace", "-f", "-qq", "-s", "65536", "-e", "trace=execve", "-o", str(trace),
                           CIKIT, "run", "--output", str(outputs), "--json"],
                          cwd=product_repo, env=fresh_user.env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    execs = trace.read_text()
    assert execs.count("execve(") > 10  # build, twine, uv, git, pytest ... were all seen
    assert secret not in execs
    assert secret not in proc.stdout + proc.stderr
    for path in [*product_repo.rglob("*"), *tmp_path.glob("*")]:
        if path.is_file() and path != trace:
            assert secret.encode() not in path.read_bytes(), path
    # and not in what was attached to the index
    idx = fresh_user.index()
    version = json.loads(proc.stdout)["version"]
    rel = idx.release(f"{fresh_user.user}/unstable", "churn-model", version)
    for link in rel.results:
        assert secret not in json.dumps(idx.read_result(link))


def test_password_file_works_and_wrong_path_is_clear(fresh_user, product_repo, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(fresh_user.password + "\n")
    env = {k: v for k, v in fresh_user.env.items() if k != "CI_KIT_PASSWORD"}
    r = run_cikit("build-and-push", "--password-file", str(pw), cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    r = run_cikit("build-and-push", "--password-file", str(tmp_path / "missing"), cwd=product_repo, env=env)
    assert r.returncode == 2
    assert "cannot read the password file" in error_line(r)
