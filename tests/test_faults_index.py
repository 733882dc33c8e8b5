"""Survives faults of the index and the machine: a devpi-server killed with SIGKILL in
the middle of each stage's writes, a proxy in front of it that answers 500, drops
connections before and after the server acted, answers slowly or never, full and
read-only disks, and spaces and non-ASCII characters in every path.

After each fault: one `ci-kit: error:` line with a documented exit code, nothing on
testing/stable that counts as promoted without its records, no leftover temporary
folder or process (each test has a TMPDIR of its own), and a re-run of the stage that
exits 0 and leaves the index consistent (compared through devpi's JSON API).

Real parts only: devpi-server (one of this module's own where it is killed), real builds
and test runs, 127.0.0.1. docs/reliability.md ("Faults") lists each case.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import (
    CIKIT,
    alive,
    assert_no_process_in,
    clean_env,
    error_line,
    free_port,
    git,
    make_repo,
    require,
    run_cikit,
)
from faultproxy import FaultProxy

PASSWORD = "faults-Index-Pa55word-r8m2"
TIMEOUT = "4"  # index-timeout for runs through the proxy: an answer that never comes costs 4 s


# -- helpers ---------------------------------------------------------------------------------

def _assert_clean(tmpdir: Path) -> None:
    """No ci-kit temporary folder and no process of this run left in its TMPDIR."""
    assert sorted(p.name for p in tmpdir.iterdir() if p.name.startswith(("ci-kit-", "tmp"))) == []
    assert_no_process_in(tmpdir)


def _anon(url: str):
    from ci_kit.index import Index

    return Index(url)


def snapshot(url: str, user: str) -> dict:
    """The user's three indexes through the JSON API: per version, each file's sha256 and
    the sha256 and kind of every record attached to it."""
    idx = _anon(url)
    out: dict = {}
    for name in ("unstable", "testing", "stable"):
        where = f"{user}/{name}"
        for project in idx.projects(where):
            for version, rel in idx.releases(where, project).items():
                files = {}
                for f in rel.files:
                    recs = []
                    for link in rel.results_for(f):
                        rec = idx.read_result(link)
                        kind = rec.get("ci_kit", {}).get("kind", "?") if isinstance(rec, dict) else "?"
                        recs.append((kind, link.sha256))
                    files[f.basename] = {"sha256": f.sha256, "records": sorted(recs)}
                out[f"{where}/{project}/{version}"] = files
    return out


def kinds(files: dict, sha: str | None = None) -> dict[str, set[str]]:
    return {name: {k for k, _ in f["records"]} for name, f in files.items()}


def assert_nothing_counts_as_promoted_partially(url: str, user: str, env: dict, repo: Path) -> None:
    """On testing/stable a file without its promotion record may be left by a killed copy
    (devpi has no transaction over several requests), but it must not count: `status`
    names no promotion for the version, and promote's own check (verified) says no."""
    snap = snapshot(url, user)
    for key, files in snap.items():
        if key.startswith(f"{user}/unstable/"):
            continue
        complete = all({"promotion", "build", "test"} <= k for k in kinds(files).values())
        if complete:
            continue
        st = run_cikit("status", "churn-model", "--json", cwd=repo, env=env)
        assert st.returncode == 0, st.output
        row = next(r for r in json.loads(st.stdout)["versions"] if key.endswith("/" + r["version"]))
        assert row["promoted"] == [], (key, files, row)
        if any("promotion" in k for k in kinds(files).values()):  # some of it recorded: said to be incomplete
            assert key.rsplit("/", 2)[0] in row.get("incomplete_promotions", []), row


def assert_consistent(url: str, user: str, *, tested: bool, promoted: bool) -> dict:
    """The state a completed stage leaves: the release on unstable with both files, each with
    its build record (and test records once tested); on the target, every file with its
    promotion record and the evidence it passed on, or nothing at all."""
    snap = snapshot(url, user)
    unstable = [v for k, v in snap.items() if k.startswith(f"{user}/unstable/")]
    assert len(unstable) == 1 and len(unstable[0]) == 2, snap
    for name, k in kinds(unstable[0]).items():
        assert "build" in k and (not tested or "test" in k), (name, snap)
    targets = [v for k, v in snap.items() if not k.startswith(f"{user}/unstable/")]
    if promoted:
        assert len(targets) == 1 and set(targets[0]) == set(unstable[0]), snap
        for name, k in kinds(targets[0]).items():
            assert {"promotion", "build", "test"} <= k, (name, snap)
            assert targets[0][name]["sha256"] == unstable[0][name]["sha256"]
            assert [r for r in targets[0][name]["records"] if r[0] == "promotion"].__len__() == 1, snap
    else:
        assert targets == [], snap
    return snap


def _py() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def attach_passes(url: str, user: str, password: str, commit: str) -> None:
    """The CI identity's own passing record for each file: what `ci-kit test` attaches,
    without paying for a test run where the test is about promotion."""
    from ci_kit import results
    from ci_kit.index import Index

    idx = Index(url, user)
    idx.login(password)
    rel = idx.release(f"{user}/unstable", "churn-model", VERSION)
    for f in rel.files:
        idx.attach_result(f, results.test_record(
            filename=f.basename, sha256=f.sha256, commit=commit, python=_py(), python_full=_py() + ".0",
            executable="python", command=["pytest"], retcode=0, output="", counts={"tests": 3, "failures": 0},
            counted=True, junit="", metrics={}, proof={}, duration=0.1))


VERSION = "2.0.0rc1"  # a pre-release: promotion goes to testing


def make_user(url: str, tag: str) -> tuple[str, str]:
    from ci_kit.index import Index

    user, password = f"fi{os.getpid()}{tag}", f"pw-fi-{tag}-Zq9x"
    idx = Index(url, user)
    idx.create_user(user, password)
    idx.login(password)
    for name, volatile in (("unstable", True), ("testing", False), ("stable", False)):
        idx.create_index(f"{user}/{name}", volatile=volatile)
    return user, password


_n = iter(range(1, 10_000))


# -- a devpi-server of this module's own, to kill ------------------------------------------

@dataclass
class OwnServer:
    url: str
    server_dir: Path
    env: dict  # for `ci-kit server start` (no private TMPDIR: the server outlives tests)

    def pid(self) -> int:
        return int((self.server_dir / "ci-kit-server.pid").read_text())

    def kill9(self) -> None:
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)

    def ensure(self) -> None:
        """Running, whatever an earlier test did to it."""
        pidfile = self.server_dir / "ci-kit-server.pid"
        if not (pidfile.exists() and alive(self.pid())):
            self.start()

    def start(self) -> str:
        r = run_cikit("server", "start", env=self.env, timeout=180)
        assert r.returncode == 0, r.output
        return r.stderr


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory, cikit: str):
    require(shutil.which("devpi-server", path=str(Path(sys.executable).parent)) or shutil.which("devpi-server"),
            "devpi-server is not installed (pip install 'ci-kit[server]')")
    server_dir = tmp_path_factory.mktemp("own") / "devpi dir ü"
    port = free_port()
    env = {**clean_env(), "CI_KIT_SERVER_DIR": str(server_dir), "CI_KIT_SERVER_PORT": str(port),
           "CI_KIT_PASSWORD": PASSWORD, "CI_KIT_USER": "ci"}
    server = OwnServer(f"http://127.0.0.1:{port}", server_dir, env)
    server.start()
    yield server
    run_cikit("server", "stop", env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cikit: str):
    """The example product at VERSION, built once; pushes go to a fresh user each time."""
    repo = make_repo(tmp_path_factory.mktemp("built") / "churn-model")
    env = {**clean_env(), "SETUPTOOLS_SCM_PRETEND_VERSION": VERSION}
    r = run_cikit("build", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    return repo, git("rev-parse", "HEAD", cwd=repo)


def user_env(url: str, user: str, password: str, tmp: Path, **extra: str) -> dict:
    return {**clean_env(), "CI_KIT_INDEX_URL": url, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password,
            "SETUPTOOLS_SCM_PRETEND_VERSION": VERSION, "TMPDIR": str(tmp), **extra}


# -- 1. SIGKILL of devpi-server in the middle of each stage --------------------------------

def _is_upload(index: str):
    return lambda path, body: path.rstrip("/") == "/" + index and b"file_upload" in body


def _is_record(index: str, kind: str):
    return lambda path, body: path.startswith("/" + index + "/") and f'"kind": "{kind}"'.encode() in body


def _second(match):
    """Matches the second request that `match` matches (the first goes through)."""
    seen = []

    def second(path: str, body: bytes) -> bool:
        if match(path, body):
            seen.append(path)
            return len(seen) == 2
        return False

    return second


# where: the proxy holds the request, the server is killed, the request goes nowhere ("held");
# the server is killed as the request reaches it ("arrival", racing its write); the server
# acts, its answer is lost, and it is killed just after ("acted").
POINTS = {"held": ("delay", 1.5, 0.3), "arrival": ("delay", 0.0, 0.0), "acted": ("drop-after", 0.0, 0.4)}


@pytest.mark.parametrize("stage, point", [(stage, point) for stage in ("upload", "attach", "promote") for point in POINTS]
                         + [("promotion-record", "held")])
def test_sigkill_of_the_server_mid_stage_then_a_rerun_completes(own_server, built, private_tmp, tmp_path, stage, point):
    repo, commit = built
    own_server.ensure()
    user, password = make_user(own_server.url, f"k{next(_n)}")
    direct = user_env(own_server.url, user, password, private_tmp)
    junit = ["--junit-dir", str(tmp_path / "junit")]
    if stage == "upload":
        args, match = ["push"], _is_upload(f"{user}/unstable")
    elif stage == "attach":
        assert run_cikit("push", cwd=repo, env=direct).returncode == 0
        args, match = ["test", f"churn-model=={VERSION}", *junit], _is_record(f"{user}/unstable", "test")
    else:  # promote: killed at its first upload to the target, or between the files' promotion records
        assert run_cikit("push", cwd=repo, env=direct).returncode == 0
        attach_passes(own_server.url, user, password, commit)
        args = ["promote", f"churn-model=={VERSION}"]
        match = _is_upload(f"{user}/testing") if stage == "promote" else _second(_is_record(f"{user}/testing", "promotion"))
    action, hold, after = POINTS[point]
    with FaultProxy(own_server.url) as proxy:
        rule = proxy.add("POST", match, action, seconds=hold)

        def killer() -> None:
            if rule.hit.wait(300):
                time.sleep(after)
                own_server.kill9()

        t = threading.Thread(target=killer, daemon=True)
        t.start()
        r = run_cikit(*args, cwd=repo, env={**direct, "CI_KIT_INDEX_URL": proxy.url, "CI_KIT_INDEX_TIMEOUT": TIMEOUT})
        t.join(30)
    assert rule.fired == 1, r.output
    assert r.returncode == 5, r.output
    assert "index" in error_line(r)
    _assert_clean(private_tmp)
    own_server.start()  # recovers what the kill left (a hot journal is rolled back)
    assert_nothing_counts_as_promoted_partially(own_server.url, user, direct, repo)
    again = run_cikit(*args, cwd=repo, env=direct)
    assert again.returncode == 0, again.output
    _assert_clean(private_tmp)
    snap = assert_consistent(own_server.url, user, tested=stage != "upload", promoted=stage.startswith("promot"))
    if stage != "attach":  # a further re-run changes nothing (a test re-run adds its new records by design)
        assert run_cikit(*args, cwd=repo, env=direct).returncode == 0
        assert snapshot(own_server.url, user) == snap


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
@pytest.mark.parametrize("stage", ["push", "promote"])
def test_ci_kit_signalled_mid_stage_then_a_rerun_completes(own_server, built, private_tmp, tmp_path, stage, sig, code):
    """CI's cancel (SIGTERM), Ctrl-C (SIGINT) or a lost agent (SIGKILL) while ci-kit
    uploads (job 1) or copies (promote): one line or nothing, no folder or process left
    (after a SIGKILL, the next run sweeps them), nothing counts as promoted, and a re-run
    completes. (The test stage is covered by tests/test_faults.py.)"""
    repo, commit = built
    own_server.ensure()
    user, password = make_user(own_server.url, f"s{next(_n)}")
    direct = user_env(own_server.url, user, password, private_tmp)
    if stage == "push":
        args, match = ["push"], _second(_is_upload(f"{user}/unstable"))  # between the two uploads
    else:
        assert run_cikit("push", cwd=repo, env=direct).returncode == 0
        attach_passes(own_server.url, user, password, commit)
        args, match = ["promote", f"churn-model=={VERSION}"], _second(_is_upload(f"{user}/testing"))
    with FaultProxy(own_server.url) as proxy:
        rule = proxy.add("POST", match, "delay", seconds=20)
        proc = subprocess.Popen([CIKIT, *args], cwd=repo, env={**direct, "CI_KIT_INDEX_URL": proxy.url},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert rule.hit.wait(120), "the stage never reached its second upload"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if sig != signal.SIGKILL:
        assert [line for line in err.splitlines() if line.startswith("ci-kit: ")] == [f"ci-kit: error: interrupted ({sig.name})"], err
        _assert_clean(private_tmp)
    assert_nothing_counts_as_promoted_partially(own_server.url, user, direct, repo)
    again = run_cikit(*args, cwd=repo, env=direct)
    assert again.returncode == 0, again.output
    _assert_clean(private_tmp)
    assert_consistent(own_server.url, user, tested=stage == "promote", promoted=stage == "promote")


# -- 2. a faulty network between ci-kit and the server ---------------------------------------

def _is_login(path: str, body: bytes) -> bool:
    return path == "/+login"


def _is_release_get(index: str):
    return lambda path, _body: path.startswith(f"/{index}/churn-model")


# id: (stage, method, matcher(user), action, seconds, times, exit code)
NET = {
    "push-upload-500": ("push", "POST", lambda u: _is_upload(f"{u}/unstable"), "error", 0, 1, 5),
    "push-upload-dropped-before": ("push", "POST", lambda u: _is_upload(f"{u}/unstable"), "drop-before", 0, 1, 5),
    "push-upload-dropped-after": ("push", "POST", lambda u: _is_upload(f"{u}/unstable"), "drop-after", 0, 1, 5),
    "push-build-record-never": ("push", "POST", lambda u: _is_record(f"{u}/unstable", "build"), "hang", 12, 1, 5),
    "test-result-500": ("test", "POST", lambda u: _is_record(f"{u}/unstable", "test"), "error", 0, 1, 5),
    "promote-upload-dropped-after": ("promote", "POST", lambda u: _is_upload(f"{u}/testing"), "drop-after", 0, 1, 5),
    "promote-upload-never": ("promote", "POST", lambda u: _is_upload(f"{u}/testing"), "hang", 12, 1, 5),
    "promote-record-500": ("promote", "POST", lambda u: _is_record(f"{u}/testing", "promotion"), "error", 0, 1, 5),
    "promote-login-never": ("promote", "POST", lambda _u: _is_login, "hang", 12, 1, 5),
    "promote-read-never": ("promote", "GET", lambda u: _is_release_get(f"{u}/unstable"), "hang", 12, 3, 5),
    "promote-reads-500-beyond-retries": ("promote", "GET", lambda u: _is_release_get(f"{u}/unstable"), "error", 0, 50, 5),
    # reads are retried (urllib3 Retry on the session): these end in success on the first run
    "promote-reads-500-twice": ("promote", "GET", lambda u: _is_release_get(f"{u}/unstable"), "error", 0, 2, 0),
    "push-reads-dropped-twice": ("push", "GET", lambda u: _is_release_get(f"{u}/unstable"), "drop-before", 0, 2, 0),
    "promote-reads-slow": ("promote", "GET", lambda _u: (lambda _p, _b: True), "delay", 1.5, 3, 0),
}


@pytest.mark.parametrize("case", list(NET))
def test_network_fault_is_one_line_then_a_rerun_completes(own_server, built, private_tmp, tmp_path, case):
    stage, method, matcher, action, seconds, times, code = NET[case]
    repo, commit = built
    own_server.ensure()
    user, password = make_user(own_server.url, f"n{next(_n)}")
    direct = user_env(own_server.url, user, password, private_tmp)
    args = {"push": ["push"], "test": ["test", f"churn-model=={VERSION}", "--junit-dir", str(tmp_path / "junit")],
            "promote": ["promote", f"churn-model=={VERSION}"]}[stage]
    if stage != "push":
        assert run_cikit("push", cwd=repo, env=direct).returncode == 0
    if stage == "promote":
        attach_passes(own_server.url, user, password, commit)
    before = snapshot(own_server.url, user)
    with FaultProxy(own_server.url) as proxy:
        rule = proxy.add(method, matcher(user), action, seconds=seconds, times=times)
        started = time.monotonic()
        r = run_cikit(*args, cwd=repo, env={**direct, "CI_KIT_INDEX_URL": proxy.url, "CI_KIT_INDEX_TIMEOUT": TIMEOUT})
        took = time.monotonic() - started
    assert rule.fired >= 1, r.output
    assert r.returncode == code, r.output
    assert "Traceback" not in r.output
    _assert_clean(private_tmp)
    if code == 0:
        assert rule.fired == times  # every fault was met and got over
        assert_consistent(own_server.url, user, tested=stage != "push", promoted=stage == "promote")
        return
    line = error_line(r)
    assert "index" in line, line
    if action == "hang":
        assert f"did not answer within {TIMEOUT}s" in line, line
        assert took < seconds, f"{took:.1f}s: the index timeout did not bound the wait"
    if method == "GET":
        assert snapshot(own_server.url, user) == before  # nothing was written
    assert_nothing_counts_as_promoted_partially(own_server.url, user, direct, repo)
    again = run_cikit(*args, cwd=repo, env=direct)
    assert again.returncode == 0, again.output
    _assert_clean(private_tmp)
    assert_consistent(own_server.url, user, tested=stage != "push", promoted=stage == "promote")


# -- 3. full and read-only disks ---------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs of the test's own; unmounted afterwards."""
    require(os.geteuid() == 0 and shutil.which("mount"), "mounting a small tmpfs needs root")
    mnt = tmp_path / "small disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=1777", "tmpfs", str(mnt)], capture_output=True, text=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _spoil(mnt: Path, how: str) -> None:
    for sub in ("dist", "results", "tmp"):
        (mnt / sub).mkdir()
    if how == "full":
        with open(mnt / "filler", "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        assert shutil.disk_usage(mnt).free < 65536
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)


@pytest.mark.parametrize("how", ["full", "read-only"])
@pytest.mark.parametrize("where", ["dist-dir", "results-dir", "TMPDIR-job-1", "TMPDIR-promote"])
def test_full_or_read_only_disk_is_one_line_and_changes_nothing(own_server, built, private_tmp, tmp_path, small_disk, where, how):
    repo, commit = built
    own_server.ensure()
    user, password = make_user(own_server.url, f"d{next(_n)}")
    env = user_env(own_server.url, user, password, private_tmp)
    if where == "dist-dir":
        args = ["build-and-push", "--dist-dir", str(small_disk / "dist")]
    elif where == "results-dir":
        assert run_cikit("push", cwd=repo, env=env).returncode == 0
        args = ["test", f"churn-model=={VERSION}", "--results-dir", str(small_disk / "results")]  # JUnit goes there too
    elif where == "TMPDIR-job-1":
        args = ["build-and-push", "--dist-dir", str(tmp_path / "dist")]
    else:
        assert run_cikit("push", cwd=repo, env=env).returncode == 0
        attach_passes(own_server.url, user, password, commit)
        args = ["promote", f"churn-model=={VERSION}"]
    if where.startswith("TMPDIR"):
        env["TMPDIR"] = str(small_disk / "tmp")
    before = snapshot(own_server.url, user)
    _spoil(small_disk, how)
    r = run_cikit(*args, cwd=repo, env=env)
    assert r.returncode in (2, 4), r.output
    line = error_line(r)
    assert ("No space left" in line or "no space" in line.lower()) if how == "full" else ("read-only" in line.lower()), line
    assert snapshot(own_server.url, user) == before  # nothing uploaded, nothing attached
    _assert_clean(private_tmp)


# -- 4. spaces and non-ASCII characters in every path ----------------------------------------

def test_spaces_and_non_ascii_in_every_path(tmp_path: Path, cikit: str):
    require(shutil.which("devpi-server", path=str(Path(sys.executable).parent)) or shutil.which("devpi-server"),
            "devpi-server is not installed (pip install 'ci-kit[server]')")
    base = tmp_path / "Jenkins workspace ü" / "job é 2"
    base.mkdir(parents=True)
    tmp = base / "tmp dir ß"
    tmp.mkdir()
    repo = make_repo(base / "churn model ø")
    port = free_port()
    srv = {**clean_env(), "CI_KIT_SERVER_DIR": str(base / "server dir å"), "CI_KIT_SERVER_PORT": str(port),
           "CI_KIT_PASSWORD": PASSWORD, "CI_KIT_USER": "ci", "TMPDIR": str(tmp)}
    r = run_cikit("server", "start", env=srv, timeout=180)
    assert r.returncode == 0, r.output
    try:
        env = {**user_env(f"http://127.0.0.1:{port}", "ci", PASSWORD, tmp),
               "CI_KIT_DIST_DIR": str(base / "dist dir ñ"), "CI_KIT_RESULTS_DIR": str(base / "results dir ç")}
        r = run_cikit("run", "--json", cwd=repo, env=env)
        assert r.returncode == 0, r.output
        out = json.loads(r.stdout)
        assert out["promoted_to"] == "ci/testing" and out["changed"], out
        assert all(t["passed"] for t in out["tests"]["runs"]), out["tests"]
        assert list((base / "dist dir ñ").glob("*.whl")) and list((base / "results dir ç").rglob("*.json"))
        r = run_cikit("test-and-promote", f"churn-model=={VERSION}", "--junit-dir", str(base / "junit dir ü"), cwd=repo, env=env)
        assert r.returncode == 0, r.output
        assert list((base / "junit dir ü").rglob("*.xml"))
        assert_consistent(f"http://127.0.0.1:{port}", "ci", tested=True, promoted=True)
    finally:
        run_cikit("server", "stop", env=srv)
    assert [p.name for p in tmp.iterdir() if p.name.startswith("ci-kit-")] == []
