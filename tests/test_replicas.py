"""Scale-out (issue 16, docs/scale.md): devpi on PostgreSQL with a primary and two
replicas, started with `ci-kit server start`; 8 pipelines at once, job 1 on the primary
or a replica and job 2 on another replica; one replica is killed and restarted in the
middle. Every pipeline is promoted (those caught by the kill after a re-run of the stage
that stopped, which stopped with exit 5 and one line), nothing reads stale state, and the
three servers end with the same index state.

PostgreSQL is Debian's `postgresql` package (.ci/run installs it): a cluster of its own
in a temporary folder, run as the `postgres` user, on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from conftest import CIKIT, Result, clean_env, free_port, git, make_repo, require, run_cikit

pytestmark = pytest.mark.slow

DB_PASSWORD = "db-Pa55word-for-devpi-9x"
PASSWORD = "replicas-Pa55word-k3v"
PIPELINES = 8


@dataclass
class Postgres:
    host: str
    port: int
    base: Path

    @property
    def storage(self) -> str:
        return f"pg8000:host={self.host},port={self.port},database=devpi,user=devpi"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else (Path(shutil.which("initdb")).parent if shutil.which("initdb") else None)


def _as_postgres(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def postgres():
    bindir = _pg_bin()
    require(bindir, "PostgreSQL is not installed (Debian: apt-get install postgresql)")
    if os.geteuid() == 0:
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pg_user = None
        require(pg_user, "no postgres user to run PostgreSQL as (Debian's postgresql package makes it)")
    base = Path(tempfile.mkdtemp(prefix="ci-kit-pg-"))  # not under pytest's 0700 root-owned tmp: postgres must reach it
    if os.geteuid() == 0:
        os.chown(base, pg_user.pw_uid, pg_user.pw_gid)
    (base / "pw").write_text("pg-superuser-Pa55-4q\n")
    if os.geteuid() == 0:
        os.chown(base / "pw", pg_user.pw_uid, pg_user.pw_gid)
    port = free_port()
    r = _as_postgres([str(bindir / "initdb"), "-D", str(base / "data"), "-U", "postgres", "-A", "scram-sha-256",
                      "--pwfile", str(base / "pw"), "--no-sync"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = _as_postgres([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w", "-t", "120",
                      "-o", f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off", "start"])
    assert r.returncode == 0, r.stdout + r.stderr + (base / "log").read_text(errors="replace")
    try:
        psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        env = {**os.environ, "PGPASSWORD": "pg-superuser-Pa55-4q"}
        for sql in (f"CREATE ROLE devpi LOGIN PASSWORD '{DB_PASSWORD}'", "CREATE DATABASE devpi OWNER devpi"):
            r = _as_postgres([*psql, "-c", sql], env=env)
            assert r.returncode == 0, r.stdout + r.stderr
        yield Postgres("127.0.0.1", port, base)
    finally:
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Server:
    name: str
    env: dict[str, str]  # ci-kit server's environment (server-dir, port, ...)
    url: str
    dir: Path

    def pid(self) -> int:
        return int((self.dir / "ci-kit-server.pid").read_text())

    def status(self) -> dict:
        r = run_cikit("server", "status", "--json", env=self.env)
        return json.loads(r.stdout)


def _start(servers: list[tuple[Server, list[str]]]) -> None:
    """`ci-kit server start` for each, at once (each start is seconds of devpi's own start-up)."""
    procs = [(s, subprocess.Popen([CIKIT, "server", "start", *args], env=s.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)) for s, args in servers]
    for s, p in procs:
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 0, f"{s.name}: {out}"


@pytest.fixture(scope="module")
def cluster(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory):
    require(shutil.which("devpi-server", path=str(Path(CIKIT).parent)), "devpi-server is not installed (ci-kit[server])")
    base = tmp_path_factory.mktemp("cluster")
    common = {**clean_env(), "CI_KIT_USER": "ci", "CI_KIT_PASSWORD": PASSWORD}
    servers = []
    for name in ("primary", "replica1", "replica2"):
        port = free_port()
        env = {**common, "CI_KIT_SERVER_DIR": str(base / name), "CI_KIT_SERVER_PORT": str(port)}
        servers.append(Server(name, env, f"http://127.0.0.1:{port}", base / name))
    primary, r1, r2 = servers
    primary.env.update(CI_KIT_SERVER_STORAGE=postgres.storage, CI_KIT_SERVER_STORAGE_PASSWORD=DB_PASSWORD)
    _start([(primary, [])])
    for r in (r1, r2):
        r.env["CI_KIT_SERVER_SECRET_FILE"] = str(primary.dir / "secret")
    _start([(r1, ["--replica-of", primary.url]), (r2, ["--replica-of", primary.url])])
    yield primary, r1, r2
    for s in servers:
        run_cikit("server", "stop", env=s.env)


def test_the_storage_password_stays_in_the_environment(cluster, postgres):
    primary, r1, _ = cluster
    argv = Path(f"/proc/{primary.pid()}/cmdline").read_bytes().decode()
    assert DB_PASSWORD not in argv and "--role\0primary" in argv
    assert DB_PASSWORD not in (primary.dir / "server.log").read_text(errors="replace")
    assert postgres.storage  # the database holds the primary's data: no SQLite file next to it
    assert not (primary.dir / ".sqlite").exists() and (r1.dir / ".sqlite").exists()


def test_server_status_shows_roles_and_serials(cluster):
    primary, r1, _ = cluster
    p = primary.status()["topology"]
    assert p["role"] == "primary" and isinstance(p["serial"], int)
    r = run_cikit("server", "status", env=r1.env)
    assert r.returncode == 0, r.output
    assert f"role: replica of {primary.url} (serial " in r.stdout, r.stdout
    assert r1.status()["topology"]["primary_url"] == primary.url


@dataclass
class Pipeline:
    n: int
    repo: Path
    job1: Server
    job2: Server
    results: list[tuple[str, Result]] = field(default_factory=list)
    requirement: str = ""

    def env(self, server: Server) -> dict[str, str]:
        return {**clean_env(), "CI_KIT_INDEX_URL": server.url, "CI_KIT_USER": "ci", "CI_KIT_PASSWORD": PASSWORD,
                "CI_KIT_INDEX_TIMEOUT": "120", "CI_KIT_REPLICA_WAIT": "120"}

    def run(self, started: threading.Event | None = None) -> bool:
        """Job 1, then job 2 (what is left of them): True when both passed."""
        if not self.requirement:
            r = run_cikit("build-and-push", cwd=self.repo, env=self.env(self.job1))
            self.results.append((f"job 1 on {self.job1.name}", r))
            if r.returncode != 0:
                return False
            self.requirement = r.stdout.strip().splitlines()[-1]
        if started is not None:
            started.set()
        r = run_cikit("test-and-promote", self.requirement, cwd=self.repo, env=self.env(self.job2))
        self.results.append((f"job 2 on {self.job2.name}", r))
        return r.returncode == 0


def _state(server: Server) -> dict:
    """What the index holds for ci: every version of churn-model on each index with its
    files and records (hrefs without the server's own address)."""
    out = {}
    for name in ("unstable", "testing", "stable"):
        resp = requests.get(f"{server.url}/ci/{name}/churn-model", headers={"Accept": "application/json"}, timeout=60)
        out[name] = resp.json().get("result", {}) if resp.status_code == 200 else {}
    return json.loads(json.dumps(out).replace(server.url, "URL"))


def _serial(server: Server) -> int:
    return int(requests.get(f"{server.url}/+api", timeout=60).headers["X-Devpi-Serial"])


def test_eight_pipelines_across_replicas_with_one_killed(cluster, tmp_path):
    primary, r1, r2 = cluster
    t0 = time.monotonic()
    pipelines = []
    for n in range(PIPELINES):
        repo = make_repo(tmp_path / f"repo{n}")
        git("commit", "-q", "--allow-empty", "-m", f"pipeline {n}", cwd=repo)  # a version of its own
        job1 = (primary, r1, r2)[n % 3]
        pipelines.append(Pipeline(n, repo, job1, r2 if job1 is r1 else r1))
    on_r2 = threading.Event()  # a job 2 on replica 2 has started: kill replica 2 then
    passed: dict[int, bool] = {}

    def go(p: Pipeline) -> None:
        passed[p.n] = p.run(on_r2 if p.job2 is r2 else None)

    threads = [threading.Thread(target=go, args=(p,)) for p in pipelines]
    for t in threads:
        t.start()
    while not on_r2.wait(1) and any(t.is_alive() for t in threads):
        pass
    assert on_r2.is_set(), "\n".join(f"pipeline {p.n}, {w}: {r.output}" for p in pipelines for w, r in p.results)
    time.sleep(1.0)
    print(f"[{time.monotonic() - t0:.0f}s] killing replica 2")
    os.kill(r2.pid(), signal.SIGKILL)
    down = run_cikit("status", env=pipelines[0].env(r2))  # a server that is gone: one line, exit 5
    assert down.returncode == 5 and "cannot reach the index" in down.stderr, down.output
    _start([(r2, [])])  # its role and primary come from its directory
    print(f"[{time.monotonic() - t0:.0f}s] replica 2 restarted")
    for t in threads:
        t.join(900)

    for p in pipelines:
        for where, r in p.results:
            assert "Traceback" not in r.output and "500 Internal Server Error" not in r.output, f"pipeline {p.n}, {where}: {r.output}"
            if r.returncode != 0:  # only the kill may stop a stage: the index went away, exit 5, one line
                assert r.returncode == 5 and r2.name in where, f"pipeline {p.n}, {where}: {r.output}"
    print(f"[{time.monotonic() - t0:.0f}s] pipelines done")
    caught = [p for p in pipelines if not passed[p.n]]
    for p in caught:  # the re-run of what stopped completes
        assert p.run(), f"pipeline {p.n} re-run: {p.results[-1][1].output}"
    print(f"{len(caught)} of {PIPELINES} pipelines caught by the kill, all recovered on re-run")

    want = _serial(primary)
    deadline = time.monotonic() + 120
    while min(_serial(r1), _serial(r2)) < want and time.monotonic() < deadline:
        time.sleep(0.5)
    state = _state(primary)
    assert sorted(state["testing"]) == sorted(p.requirement.split("==")[1] for p in pipelines)
    for version, rel in state["testing"].items():
        assert sorted(link["rel"] for link in rel["+links"]).count("releasefile") == 2, version
    assert _state(r1) == state and _state(r2) == state


# -- bad input: one line, exit 2, nothing started (no PostgreSQL needed) ------------------------

def test_bad_scale_out_input_is_one_line(tmp_path):
    from conftest import error_line

    env = {**clean_env(), "CI_KIT_SERVER_DIR": str(tmp_path / "srv"), "CI_KIT_SERVER_PORT": str(free_port())}
    r = run_cikit("server", "start", env={**env, "CI_KIT_SERVER_STORAGE": f"pg8000:host=db,password={DB_PASSWORD}"})
    assert r.returncode == 2 and "CI_KIT_SERVER_STORAGE_PASSWORD" in error_line(r), r.output
    assert DB_PASSWORD not in r.output  # the rejected value is shown with its password masked
    r = run_cikit("server", "start", "--replica-of", "primary:3141", env=env)
    assert r.returncode == 2 and "--replica-of" in error_line(r), r.output
    r = run_cikit("server", "start", "--replica-of", "http://127.0.0.1:9", env=env)
    line = error_line(r)
    assert r.returncode == 2 and "no secret file" in line and "replica needs its primary's" in line, r.output
    r = run_cikit("status", env={**env, "CI_KIT_REPLICA_WAIT": "0"})
    assert r.returncode == 2 and "`replica-wait` must be a number of seconds" in error_line(r), r.output
    assert not (tmp_path / "srv" / ".serverversion").exists()  # nothing was initialised
