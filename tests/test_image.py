"""`ci-kit image` with a real Docker engine and a real registry (issue 3).

The engine and the registry are the ones scripts/start-docker starts (dockerd without a
bridge network, Debian's docker-registry on 127.0.0.1), and the base is the image
scripts/make-base-image makes with debootstrap and pushes to that registry: nothing is
pulled from the internet. As root on Debian (CI), the session runs make-base-image itself
(idempotent; seconds once its cache is warm); elsewhere it uses a running engine and the
reference that script left in /var/lib/ci-kit-docker. Without them the suite skips, and
fails instead under CI_KIT_REQUIRE_ALL=1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import ROOT, clean_env, error_line, free_port, git, require, run_cikit

STATE_DIR = Path("/var/lib/ci-kit-docker")
REF_FILE = STATE_DIR / "python-base-bookworm.ref"
PREDICT = ["--tenure", "3", "--monthly", "95.5", "--support-calls", "4"]

pytestmark = pytest.mark.slow


# -- the machine ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Docker:
    base: str       # REGISTRY/REPO@sha256:...
    registry: str   # 127.0.0.1:PORT
    env: dict[str, str]

    @property
    def base_digest(self) -> str:
        return self.base.split("@", 1)[1]


def _docker(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 600) -> str:
    proc = subprocess.run(["docker", *args], check=False, capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def docker() -> Docker:
    require(shutil.which("docker"), "the docker command is not installed (scripts/start-docker installs Debian's docker.io)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CI_KIT_")}
    problem = ""
    if os.geteuid() == 0 and Path("/etc/debian_version").exists():
        # idempotent: installs and starts what is missing, reuses the cached root file system
        proc = subprocess.run([str(ROOT / "scripts" / "make-base-image")], check=False, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=1800)
        if proc.returncode != 0:
            problem = "scripts/make-base-image failed: " + (proc.stderr.strip().splitlines() or ["no output"])[-1]
    envfile = STATE_DIR / "docker.env"
    if envfile.is_file():
        for line in envfile.read_text().splitlines():
            if line.startswith("DOCKER_HOST=") and "DOCKER_HOST" not in os.environ:
                env["DOCKER_HOST"] = line.split("=", 1)[1]
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False, capture_output=True, text=True, env=env)
    require(not problem, problem)
    require(engine.returncode == 0, "no Docker engine is running (scripts/start-docker starts one)")
    require(REF_FILE.is_file(), f"no base image reference in {REF_FILE} (scripts/make-base-image makes one)")
    base = REF_FILE.read_text().strip()
    return Docker(base, base.split("/", 1)[0], env)


@pytest.fixture
def env(fresh_user, docker: Docker) -> dict[str, str]:
    """ci-kit's environment: the fresh devpi user, the engine, the base image."""
    extra = {"DOCKER_HOST": docker.env["DOCKER_HOST"]} if "DOCKER_HOST" in docker.env else {}
    return {**fresh_user.env, **extra, "CI_KIT_IMAGE_BASE": docker.base}


def registry_get(registry: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://{registry}{path}", method=method, headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def registry_tags(registry: str, repo: str) -> list[str] | None:
    """The repository's tags, or None when the registry does not know the repository."""
    code, _, body = registry_get(registry, f"/v2/{repo}/tags/list")
    if code == 404:
        return None
    assert code == 200, body
    return sorted(json.loads(body).get("tags") or [])


def unique_repo(docker: Docker, fresh_user, what: str) -> str:
    return f"{docker.registry}/ci-kit-tests/{fresh_user.user.lower()}-{what}"


# -- releases ---------------------------------------------------------------------------------

def make_wheel(dest: Path, name: str, version: str) -> Path:
    """A tiny pure-Python wheel made here, so dependencies come from devpi, not the internet."""
    mod = name.replace("-", "_")
    files = {
        f"{mod}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{mod}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test dependency\n\n".encode(),
        f"{mod}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: ci-kit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n"
                     for p, b in files.items()) + f"{mod}-{version}.dist-info/RECORD,,\n"
    path = dest / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for p, b in [*files.items(), (f"{mod}-{version}.dist-info/RECORD", record.encode())]:
            zf.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), b)
    return path


def upload_dependency(fresh_user, tmp_path: Path, name: str, version: str) -> None:
    from ci_kit.dists import read_metadata

    wheel = make_wheel(tmp_path, name, version)
    fresh_user.index().upload(f"{fresh_user.user}/stable", wheel, read_metadata(wheel))


@dataclass(frozen=True)
class Rel:
    requirement: str
    version: str
    commit: str
    wheel_sha256: str


def release(repo: Path, env: dict[str, str], version: str, *, dependencies: list[str] | None = None,
            promote: str = "force") -> Rel:
    """Commit (a change), tag vVERSION, job 1, then promotion: 'force' (no tests: quick),
    'test' (job 2 for real) or 'none' (left on the unstable index)."""
    ignore = repo / ".gitignore"
    if "ci-kit-image/" not in ignore.read_text():  # the image step's artifacts, never committed
        ignore.write_text(ignore.read_text() + "ci-kit-image/\n")
    pyproject = repo / "pyproject.toml"
    if dependencies is not None:
        text = pyproject.read_text()
        start = text.index("dependencies = [")
        end = text.index("]", start) + 1
        pyproject.write_text(text[:start] + "dependencies = " + json.dumps(dependencies) + text[end:])
    with open(repo / "README.md", "a") as fh:
        fh.write(f"\nRelease {version}.\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", f"release {version}", cwd=repo)
    git("tag", f"v{version}", cwd=repo)
    r = run_cikit("build-and-push", "--json", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    out = json.loads(r.stdout)
    assert out["version"] == version, out
    if promote == "force":
        r = run_cikit("promote", out["requirement"], "--force", cwd=repo, env=env)
        assert r.returncode == 0, r.output
    elif promote == "test":
        r = run_cikit("test-and-promote", out["requirement"], "--commit", out["commit"], cwd=repo, env=env)
        assert r.returncode == 0, r.output
    wheel = next(f for f in out["files"] if f["filename"].endswith(".whl"))
    return Rel(out["requirement"], version, out["commit"], wheel["sha256"])


def image(repo: Path, env: dict[str, str], requirement: str, *args: str, timeout: float = 1200):
    return run_cikit("image", requirement, *args, cwd=repo, env=env, timeout=timeout)


def image_json(repo: Path, env: dict[str, str], requirement: str, *args: str) -> dict:
    r = image(repo, env, requirement, "--json", *args)
    assert r.returncode == 0, r.output
    return json.loads(r.stdout)


def labels_of(ref: str, docker: Docker) -> dict[str, str]:
    return json.loads(_docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref, env=docker.env))


def layers_of(ref: str, docker: Docker) -> list[str]:
    return json.loads(_docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref, env=docker.env))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- tests ------------------------------------------------------------------------------------

def test_image_of_promoted_release_runs_predicts_and_matches_the_release(docker, env, fresh_user, product_repo):
    rel = release(product_repo, env, "1.0.0", promote="test")
    repo = unique_repo(docker, fresh_user, "churn")
    out = image_json(product_repo, env, rel.requirement, "--push", repo, "--tag", "stable",
                     "--smoke", "churn-predict " + " ".join(PREDICT))

    # pushed: VERSION and the moving tag, one digest, which the registry serves
    assert out["digest"].startswith("sha256:") and out["reference"] == f"{repo}@{out['digest']}"
    assert sorted(out["pushed"]) == sorted([f"{repo}:1.0.0", f"{repo}:stable"])
    assert registry_tags(docker.registry, repo.split("/", 1)[1]) == ["1.0.0", "stable"]
    for tag in ("1.0.0", "stable"):
        code, headers, _ = registry_get(docker.registry, f"/v2/{repo.split('/', 1)[1]}/manifests/{tag}", "HEAD")
        assert code == 200 and headers.get("Docker-Content-Digest") == out["digest"]

    # it runs (by digest, host network only) and predicts
    ref = out["reference"]
    _docker("rmi", f"{repo}:1.0.0", f"{repo}:stable", env=docker.env)
    _docker("pull", ref, env=docker.env)
    prediction = json.loads(_docker("run", "--rm", "--network", "host", ref, *PREDICT, env=docker.env))
    assert 0.0 <= prediction["churn_probability"] <= 1.0 and isinstance(prediction["churn"], bool)

    # the wheel inside is the index's (sha256 computed in the build from the file pip installed)
    idx = fresh_user.index()
    stable = idx.release(f"{fresh_user.user}/stable", "churn-model", "1.0.0")
    wheel = next(f for f in stable.files if f.kind == "wheel")
    assert wheel.sha256 == rel.wheel_sha256
    inside = json.loads(_docker("run", "--rm", "--network", "host", "--entrypoint", "cat", ref,
                                "/opt/app/ci-kit-release.json", env=docker.env))
    assert inside == {"requirement": rel.requirement, "wheel": wheel.basename, "sha256": wheel.sha256}

    # the lock: the release pinned to its wheel's sha256 alone, kept as an artifact with an SBOM
    lock = Path(out["lock"])
    text = lock.read_text()
    assert f"churn-model==1.0.0 \\\n    --hash=sha256:{wheel.sha256}\n" in text
    assert text.count("--hash=") == 1  # the example has no dependencies
    assert sha256_file(lock) == out["lock_sha256"]
    sbom = json.loads(Path(out["sbom"]).read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert any(c.get("name") == "churn-model" and c.get("version") == "1.0.0" for c in sbom.get("components", []))
    assert Path(out["sbom"]).parent == lock.parent and (lock.parent / "Dockerfile").is_file()

    # labels: OCI's and ci-kit's, matching the release, its commit and the base
    labels = labels_of(ref, docker)
    commit_time = datetime.fromtimestamp(int(git("show", "-s", "--format=%ct", rel.commit, cwd=product_repo)),
                                         timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = {
        "org.opencontainers.image.version": "1.0.0",
        "org.opencontainers.image.revision": rel.commit,  # read back from the test results on the index
        "org.opencontainers.image.created": commit_time,
        "org.opencontainers.image.base.name": docker.base.split("@")[0],
        "org.opencontainers.image.base.digest": docker.base_digest,
        "org.ci-kit.index": f"{fresh_user.user}/stable",
        "org.ci-kit.promoted": "true",
        "org.ci-kit.lock.sha256": out["lock_sha256"],
        "org.ci-kit.wheel.sha256": wheel.sha256,
        "org.ci-kit.base.pinned": "true",
    }
    assert {k: labels.get(k) for k in expected} == expected

    # runtime stage: non-root, no pip, bytecode compiled at build time, base pinned in FROM
    probe = ("import os,sys,importlib.util as u,glob;"
             "print(os.getuid(), u.find_spec('pip') is None, len(glob.glob('/opt/app/churn_model/__pycache__/*.pyc'))>0,"
             " os.path.exists('/usr/bin/gcc'))")
    assert _docker("run", "--rm", "--network", "host", "--entrypoint", "python", ref, "-c", probe,
                   env=docker.env).split() == ["10001", "True", "True", "False"]
    assert f"FROM {docker.base} AS deps" in (lock.parent / "Dockerfile").read_text()


def test_new_version_reuses_the_dependency_layer_and_a_changed_dependency_does_not(docker, env, fresh_user, product_repo, tmp_path):
    upload_dependency(fresh_user, tmp_path, "ci-kit-image-test-dep", "1.0")
    upload_dependency(fresh_user, tmp_path, "ci-kit-image-test-dep", "2.0")
    v1 = release(product_repo, env, "2.0.0", dependencies=["ci-kit-image-test-dep==1.0"])
    v2 = release(product_repo, env, "2.0.1")  # a code change, same dependencies
    v3 = release(product_repo, env, "2.1.0", dependencies=["ci-kit-image-test-dep==2.0"])
    cache = tmp_path / "cache"  # ci-kit's own cache, empty at the start of this test
    image_env = {**env, "XDG_CACHE_HOME": str(cache)}
    built = {rel.version: image_json(product_repo, image_env, rel.requirement) for rel in (v1, v2, v3)}
    # the same dependency lock on the same base: the wheels fetched for 2.0.0 serve 2.0.1
    assert [built[v]["dependencies_reused"] for v in ("2.0.0", "2.0.1", "2.1.0")] == [False, True, False]
    l1, l2, l3 = (layers_of(built[v]["image_id"], docker) for v in ("2.0.0", "2.0.1", "2.1.0"))
    assert len(l1) == len(l2) == len(l3) >= 4
    # base, user, dependency venv: reused; only the last (the product) is new
    assert l2[:-1] == l1[:-1] and l2[-1] != l1[-1]
    # a changed dependency: a new dependency layer; base and user layer still reused
    assert l3[:-2] == l2[:-2] and l3[-2] != l2[-2] and l3[-1] != l2[-1]
    # and the dependency really is the locked one, from devpi
    for version, dep in (("2.0.1", "1.0"), ("2.1.0", "2.0")):
        got = _docker("run", "--rm", "--network", "host", "--entrypoint", "python", built[version]["image_id"], "-c",
                      "import ci_kit_image_test_dep as d; print(d.VERSION)", env=docker.env).strip()
        assert got == dep
        lock = Path(built[version]["lock"]).read_text()
        assert f"ci-kit-image-test-dep=={dep} \\\n    --hash=sha256:" in lock
    sbom = json.loads(Path(built["2.1.0"]["sbom"]).read_text())
    assert {"ci-kit-image-test-dep", "churn-model"} <= {c.get("name") for c in sbom.get("components", [])}

    # a kept wheel whose bytes no longer match the lock is never used: fetched again
    kept = list((cache / "ci-kit" / "image-wheels").glob("*/ci_kit_image_test_dep-1.0-*.whl"))
    assert len(kept) == 1
    kept[0].unlink()
    make_wheel(kept[0].parent, "ci-kit-image-test-dep", "1.0+tampered").rename(kept[0])
    r = image(product_repo, image_env, v2.requirement, "--json")
    assert r.returncode == 0, r.output
    assert "do not match the lock; fetching them again" in r.stderr
    again = json.loads(r.stdout)
    assert again["dependencies_reused"] is False
    got = _docker("run", "--rm", "--network", "host", "--entrypoint", "python", again["image_id"], "-c",
                  "import ci_kit_image_test_dep as d; print(d.VERSION)", env=docker.env).strip()
    assert got == "1.0"


def test_refuses_an_unpromoted_release_unless_asked(docker, env, fresh_user, product_repo):
    rel = release(product_repo, env, "3.0.0", promote="none")
    repo = unique_repo(docker, fresh_user, "unpromoted")
    r = image(product_repo, env, rel.requirement, "--push", repo)
    assert r.returncode == 11, r.output
    assert "not promoted" in error_line(r)
    assert registry_tags(docker.registry, repo.split("/", 1)[1]) is None

    out = image_json(product_repo, env, rel.requirement, "--from-unstable")
    labels = labels_of(out["image_id"], docker)
    assert labels["org.ci-kit.promoted"] == "false" and labels["org.ci-kit.from-unstable"] == "true"
    assert labels["org.ci-kit.index"] == f"{fresh_user.user}/unstable"


def test_refuses_an_unpinned_base_unless_asked_and_then_pins_it(docker, env, fresh_user, product_repo):
    rel = release(product_repo, env, "4.0.0")
    tagged = f"{docker.registry}/ci-kit-tests/base:{fresh_user.user.lower()}"
    _docker("tag", docker.base, tagged, env=docker.env)
    _docker("push", tagged, env=docker.env)
    unpinned = {**env, "CI_KIT_IMAGE_BASE": tagged}
    r = image(product_repo, unpinned, rel.requirement)
    assert r.returncode == 11, r.output
    line = error_line(r)
    assert "not pinned by digest" in line and docker.base_digest in line  # says what to pin it to

    out = image_json(product_repo, unpinned, rel.requirement, "--allow-unpinned-base")
    labels = labels_of(out["image_id"], docker)
    assert labels["org.opencontainers.image.base.digest"] == docker.base_digest
    assert labels["org.opencontainers.image.base.name"] == tagged
    assert labels["org.ci-kit.base.pinned"] == "false"
    assert f"FROM {tagged.rsplit(':', 1)[0]}@{docker.base_digest} AS deps" in Path(out["dockerfile"]).read_text()


def test_failing_smoke_test_pushes_nothing(docker, env, fresh_user, product_repo):
    rel = release(product_repo, env, "5.0.0")
    repo = unique_repo(docker, fresh_user, "smoke")
    r = image(product_repo, env, rel.requirement, "--push", repo, "--tag", "stable",
              "--smoke", "churn-predict --tenure not-a-number --monthly 1")
    assert r.returncode == 11, r.output
    assert "smoke test failed" in error_line(r)
    assert registry_tags(docker.registry, repo.split("/", 1)[1]) is None


def test_bad_input_is_one_line_exit_code_and_nothing_pushed(docker, env, fresh_user, product_repo):
    rel = release(product_repo, env, "6.0.0")
    repo = unique_repo(docker, fresh_user, "bad")
    path = repo.split("/", 1)[1]
    zero = "sha256:" + "0" * 64
    cases = [
        ("unknown release", "churn-model==9.9.9", [], {}, 7, "is not on"),
        ("engine not running", rel.requirement, [], {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, 11,
         "Docker engine"),
        ("registry unreachable", rel.requirement, ["--push", f"127.0.0.1:{free_port()}/x/y"], {}, 11, "not reachable"),
        ("base not found", rel.requirement, [], {"CI_KIT_IMAGE_BASE": f"{docker.registry}/ci-kit-tests/no-such-base@{zero}"},
         11, "not found"),
        ("malformed requirement", "churn-model>=1", [], {}, 2, "NAME==VERSION"),
    ]
    for what, requirement, args, extra, code, words in cases:
        r = image(product_repo, {**env, **extra}, requirement, "--push", repo, *args)
        assert r.returncode == code, (what, r.output)
        assert words in error_line(r), (what, r.stderr)
        assert registry_tags(docker.registry, path) is None, what

    # unresolvable dependencies: a release that needs a distribution no index has
    bad = release(product_repo, env, "6.1.0", dependencies=["ci-kit-no-such-distribution-x7==1.0"])
    r = image(product_repo, env, bad.requirement, "--push", repo)
    assert r.returncode == 11, r.output
    assert "cannot resolve the dependencies" in error_line(r)
    assert registry_tags(docker.registry, path) is None


def test_audit_says_when_the_vulnerability_service_cannot_be_reached(docker, env, fresh_user, product_repo):
    rel = release(product_repo, env, "7.0.0")
    repo = unique_repo(docker, fresh_user, "audit")
    # every outside address goes through a proxy that is not there; 127.0.0.1 (devpi) does not
    offline = {**env, "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}", "HTTP_PROXY": f"http://127.0.0.1:{free_port()}",
               "NO_PROXY": "127.0.0.1,localhost"}
    r = image(product_repo, offline, rel.requirement, "--audit", "--push", repo)
    assert r.returncode == 11, r.output
    line = error_line(r)
    assert "vulnerability service" in line and "cannot be reached" in line and "nothing was built or pushed" in line
    assert registry_tags(docker.registry, repo.split("/", 1)[1]) is None


@pytest.fixture
def locked_registry(tmp_path):
    """A docker-registry of this test's own on 127.0.0.1 that only takes a login (htpasswd)."""
    import time

    bcrypt = pytest.importorskip("bcrypt", reason="bcrypt makes the registry's htpasswd file (ci-kit[test] installs it)")
    require(shutil.which("docker-registry"), "Debian's docker-registry is not installed (scripts/start-docker installs it)")
    password = "reg-" + os.urandom(8).hex()
    root = tmp_path / "locked-registry"
    root.mkdir()
    (root / "htpasswd").write_text(f"pusher:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    port = free_port()
    (root / "config.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"auth:\n  htpasswd:\n    realm: ci-kit-tests\n    path: {root / 'htpasswd'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=open(root / "registry.log", "wb"))  # noqa: SIM115 - the registry writes to it while it runs
    try:
        for _ in range(100):
            try:
                if registry_get(f"127.0.0.1:{port}", "/v2/")[0] == 401:
                    break
            except urllib.error.URLError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the locked registry did not start: " + (root / "registry.log").read_text()[-500:])
        yield f"127.0.0.1:{port}", password
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _tags_with_login(registry: str, repo: str, password: str) -> list[str] | None:
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/tags/list", headers={
        "Authorization": "Basic " + base64.b64encode(f"pusher:{password}".encode()).decode()})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=30) as resp:
            return sorted(json.loads(resp.read()).get("tags") or [])
    except urllib.error.HTTPError as exc:
        assert exc.code == 404, exc  # noqa: PT017 - a 404 is an answer (no tags), the return is the point
        return None


def test_pushes_to_a_registry_that_needs_a_login_without_writing_the_password(docker, env, fresh_user, product_repo,
                                                                              locked_registry, tmp_path):
    registry, password = locked_registry
    rel = release(product_repo, env, "8.0.0")
    repo = f"{registry}/team/churn-model"
    # docker's own config lives in this test's directory: we can see that nothing is written to it
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    base_env = {**env, "DOCKER_CONFIG": str(docker_config)}

    # without a login the push is refused, after the build: exit 11, one line
    r = image(product_repo, base_env, rel.requirement, "--push", repo)
    assert r.returncode == 11, r.output
    assert "docker push" in error_line(r) and "failed" in error_line(r)
    # a wrong password is refused before anything is built
    r = image(product_repo, {**base_env, "CI_KIT_REGISTRY_USER": "pusher", "CI_KIT_REGISTRY_PASSWORD": "wrong-" + password},
              rel.requirement, "--push", repo)
    assert r.returncode == 11, r.output
    assert "refused the login of 'pusher'" in error_line(r) and "nothing was built" in error_line(r)
    assert "docker build" not in r.stderr
    # half a login is a usage error
    r = image(product_repo, {**base_env, "CI_KIT_REGISTRY_USER": "pusher"}, rel.requirement, "--push", repo)
    assert r.returncode == 2 and "registry-user and a password" in error_line(r), r.output
    assert _tags_with_login(registry, "team/churn-model", password) is None

    # the password from a file; pushed with both tags, one digest
    secret = tmp_path / "registry-password"
    secret.write_text(password + "\n")
    r = image(product_repo, {**base_env, "CI_KIT_REGISTRY_USER": "pusher", "CI_KIT_REGISTRY_PASSWORD_FILE": str(secret)},
              rel.requirement, "--push", repo, "--tag", "stable", "--json")
    assert r.returncode == 0, r.output
    out = json.loads(r.stdout)
    assert out["digest"].startswith("sha256:") and out["reference"] == f"{repo}@{out['digest']}"
    assert _tags_with_login(registry, "team/churn-model", password) == ["8.0.0", "stable"]
    # the password is nowhere: not in what ci-kit printed, not in a docker config, not in the artifacts
    assert password not in r.stdout + r.stderr
    written = [p for p in docker_config.rglob("*") if p.is_file()]
    assert all(password not in p.read_text(errors="replace") for p in written)
    assert all(base64.b64encode(f"pusher:{password}".encode()).decode() not in p.read_text(errors="replace") for p in written)
    for p in Path(out["lock"]).parent.iterdir():
        assert password not in p.read_text(errors="replace"), p


def test_kept_dependency_sets_are_pruned_to_the_most_recently_used(tmp_path):
    """The cache of dependency wheels does not grow without end (no engine needed)."""
    from ci_kit.image import wheels

    folder = tmp_path / "image-wheels"
    for i in range(wheels.KEPT_WHEEL_SETS + 3):
        d = folder / f"set{i:02d}"
        d.mkdir(parents=True)
        (d / "complete").write_text("")
        os.utime(d, (1_700_000_000 + i, 1_700_000_000 + i))
    (folder / "set99.123.tmp").mkdir()  # another ci-kit storing a set right now: left alone
    wheels.prune(folder, wheels.KEPT_WHEEL_SETS)
    left = sorted(p.name for p in folder.iterdir())
    assert left == [f"set{i:02d}" for i in range(3, wheels.KEPT_WHEEL_SETS + 3)] + ["set99.123.tmp"]


def test_image_help_lists_the_image_flags_without_loading_the_image_step():
    """The CLI owns the image flags; listing them costs none of the image step's imports."""
    code = ("import sys; from ci_kit.cli import main\n"
            "try: main(['image', '--help'])\nexcept SystemExit: pass\n"
            "loaded = [m for m in sys.modules if m.startswith('ci_kit.image') or m in ('docker', 'cyclonedx', 'packaging')]\n"
            "print('LOADED=' + ','.join(loaded))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for flag in ("--push [REGISTRY/REPO]", "--tag TAG", "--from-unstable", "--allow-unpinned-base", "--smoke CMD",
                 "--commit SHA", "--artifacts-dir DIR", "--audit", "--no-cache"):
        assert flag in out, flag
    assert out.strip().splitlines()[-1] == "LOADED=", out


def test_image_flags_are_checked_before_anything_is_asked(tmp_path):
    """A bare --push needs image-repository; an unknown flag is refused: exit 2, one line, no engine needed."""
    env = {**clean_env(), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    r = run_cikit("image", "churn-model==1.0.0", "--push", "--project-dir", str(tmp_path), env=env)
    assert r.returncode == 2, r.output
    assert "--push without a repository and no image-repository configured" in error_line(r)
    r = run_cikit("image", "churn-model==1.0.0", "--bogus", "--project-dir", str(tmp_path), env=env)
    assert r.returncode == 2, r.output
    assert "unrecognized arguments: --bogus" in error_line(r)

