"""Real projects pass first time, the way their own CI runs them (issue 13).

Each project in tests/corpus.json is its PyPI sdist, pinned by version and sha256,
downloaded once with a plain HTTPS GET from files.pythonhosted.org into a cache outside
the repository (CI_KIT_CORPUS_CACHE, default ~/.cache/ci-kit-corpus) and verified by
sha256 on every use. It is unpacked, made into a git repository tagged with its version
(the sdist's PKG-INFO and *.egg-info folders are dropped: a repository does not track
them, and the version must come from the tag), and run through
`ci-kit run` against the session's real devpi-server with the configuration its own
tox/hatch/CI configuration suggests, given as CI_KIT_* variables: the project's files
are never edited (ci-kit's outputs are kept out of `git status` by .git/info/exclude).

Each must end on stable (the commit is tagged) with a test record per file whose count,
read back from the index, equals the number of tests the project's own suite has,
established once by running that suite by hand (docs/corpus.md says how). The projects
run side by side, a few `ci-kit run` processes at a time, longest first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import GIT_ID, Devpi, Result, make_user, require, run_cikit

CORPUS = json.loads((Path(__file__).with_name("corpus.json")).read_text())["projects"]
CACHE = Path(os.environ.get("CI_KIT_CORPUS_CACHE") or Path.home() / ".cache" / "ci-kit-corpus")
WORKERS = int(os.environ.get("CI_KIT_CORPUS_WORKERS", "3"))
BUDGET_S = 600  # the whole corpus, on 2 shared cores

pytestmark = pytest.mark.slow


def sdist(project: dict) -> Path:
    """The project's sdist from the cache, downloaded first if missing; always sha256-checked."""
    path = CACHE / project["url"].rsplit("/", 1)[-1]
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(project["url"], timeout=120) as resp:
                data = resp.read()
        except OSError as exc:
            require(False, f"cannot download {project['url']} ({exc}); put the file in {CACHE}")
        if hashlib.sha256(data).hexdigest() != project["sha256"]:
            pytest.fail(f"{project['url']} does not have the pinned sha256")
        part = path.with_name(path.name + f".{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == project["sha256"], f"{path}: sha256 {digest}, pinned {project['sha256']} (delete the file to fetch it again)"
    return path


def make_project_repo(project: dict, dest: Path) -> Path:
    """The sdist unpacked as a git repository: one commit, tagged like the project tags."""
    with tarfile.open(sdist(project)) as tar:
        tar.extractall(dest.parent, filter="data")
        top = tar.getnames()[0].split("/")[0]
    (dest.parent / top).rename(dest)
    # What the sdist adds and a repository does not track: PKG-INFO (hatchling would read the
    # version from it, whatever the tag says) and setuptools' *.egg-info folders.
    (dest / "PKG-INFO").unlink()
    for egg in [p for p in dest.rglob("*.egg-info") if p.is_dir()]:
        shutil.rmtree(egg)
    env = {**os.environ, **GIT_ID}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", f"{project['name']} {project['version']} from its sdist"],
                 ["tag", project["tag"]]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)
    (dest / ".git" / "info" / "exclude").write_text("dist/\nci-kit-results/\n")
    return dest


def config_env(config: dict) -> dict[str, str]:
    """[tool.ci-kit] keys as the CI_KIT_* variables ci-kit reads (lists as JSON lists)."""
    return {"CI_KIT_" + k.upper().replace("-", "_"): json.dumps(v) if isinstance(v, list) else str(v)
            for k, v in config.items()}


@pytest.fixture(scope="module")
def corpus_user(devpi: Devpi) -> Devpi:

    user = f"corpus{os.getpid()}"
    password = f"pw-{user}-Zq9x"
    make_user(devpi.url, user, password)
    return Devpi(devpi.url, user, password, devpi.server_dir, {**devpi.env, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password})


@pytest.fixture(scope="module")
def corpus(corpus_user: Devpi, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`ci-kit run` on every project, a few at a time, longest first; name -> (result, seconds),
    "_total" -> the whole run's time, "_repos" -> name -> repository."""
    base = tmp_path_factory.mktemp("corpus")
    repos = {p["name"]: make_project_repo(p, base / p["name"]) for p in CORPUS}

    def one(p: dict) -> tuple[str, tuple[Result, float]]:
        started = time.monotonic()
        r = run_cikit("run", "--json", cwd=repos[p["name"]], env={**corpus_user.env, **config_env(p["config"])}, timeout=BUDGET_S)
        return p["name"], (r, time.monotonic() - started)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        out = dict(pool.map(one, CORPUS))  # corpus.json lists the longest first
    out["_total"] = (Result(0, "", ""), time.monotonic() - started)
    out["_repos"] = repos
    return out


@pytest.mark.parametrize("project", CORPUS, ids=[p["name"] for p in CORPUS])
def test_project_is_promoted_with_its_own_test_count(project, corpus, corpus_user):
    r, seconds = corpus[project["name"]]
    assert r.returncode == 0, f"{project['name']}: ci-kit run exited {r.returncode}\n{r.output[-6000:]}"
    data = json.loads(r.stdout)
    from packaging.utils import canonicalize_name

    assert canonicalize_name(data["requirement"].split("==")[0]) == canonicalize_name(project["name"])
    assert data["requirement"].split("==")[1] == project["version"]  # the version came from the tag
    user = corpus_user.user
    assert data["promoted_to"] == f"{user}/stable"

    idx = corpus_user.index()
    release = idx.release(f"{user}/stable", project["name"], project["version"])
    assert release is not None and sorted(f.kind for f in release.files) == ["sdist", "wheel"]
    pythons = set()
    for f in release.files:
        records = [idx.read_result(link) for link in release.results_for(f)]
        tests = [rec["ci_kit"] for rec in records if rec["ci_kit"]["kind"] == "test"]
        assert tests, f"{f.basename}: no test record on {user}/stable"
        ck = tests[-1]
        pythons.update(t["python"] for t in tests)
        assert ck["sha256"] == f.sha256 and ck["passed"] and ck["counted"]
        assert (ck["tests"], ck["failures"], ck["errors"]) == (project["tests"], 0, 0), \
            f"{f.basename}: {ck['tests']} tests recorded, the project's own suite has {project['tests']}"
        # the tests ran against the installed file, not the checkout
        assert "problem" not in ck["proof"], ck["proof"]
        assert ck["proof"]["method"] == "pytest plugin"
        assert ck["proof"]["installed_version"] == project["version"]
    assert pythons == set(project["config"].get("python-versions", [f"{sys.version_info[0]}.{sys.version_info[1]}"]))
    if "C extension" in project["covers"]:
        wheel = next(f for f in release.files if f.kind == "wheel")
        assert "-none-any" not in wheel.basename, wheel.basename  # compiled, platform-specific
    print(f"{project['name']}: {seconds:.0f} s")


def test_corpus_within_budget(corpus):
    _, total = corpus["_total"]
    print(f"corpus: {len(CORPUS)} projects in {total:.0f} s with {WORKERS} at a time")
    assert total < BUDGET_S


VCS_VERSIONED = {"structlog": "26.1.1.dev1", "pluggy": "1.7.1.dev1"}  # hatch-vcs; setuptools_scm


def test_the_next_untagged_commit_is_a_dev_version_promoted_to_testing(corpus, corpus_user):
    """After the tagged release, one more commit: hatch-vcs and setuptools_scm give it a dev
    version of its own, which is tested and goes to testing, not stable (no collision)."""
    def one(name: str) -> tuple[str, Result]:
        repo = corpus["_repos"][name]
        subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "the next change"], cwd=repo,
                       env={**os.environ, **GIT_ID}, check=True)
        project = next(p for p in CORPUS if p["name"] == name)
        return name, run_cikit("run", "--json", cwd=repo, env={**corpus_user.env, **config_env(project["config"])}, timeout=BUDGET_S)

    with ThreadPoolExecutor(max_workers=len(VCS_VERSIONED)) as pool:
        results = dict(pool.map(one, VCS_VERSIONED))
    for name, r in results.items():
        assert r.returncode == 0, f"{name}: {r.output[-4000:]}"
        data = json.loads(r.stdout)
        from packaging.version import Version

        req_name, version = data["requirement"].split("==")
        assert req_name == name and Version(version).public == VCS_VERSIONED[name], data["requirement"]  # pluggy keeps +g<sha>
        assert data["promoted_to"] == f"{corpus_user.user}/testing"
