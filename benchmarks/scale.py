"""Row `scale` (docs/scale.md): 8 pipelines at once against one standalone devpi-server,
then against a primary on PostgreSQL with two replicas (job 1 on the primary or a
replica, job 2 on another replica), alternating; and the time the jobs spent in the
serial wait (ci_kit.serials prints each wait: "index: waited 0.12s ...").

    scripts/bench scale [--rounds N]     -> benchmarks/RESULTS-scale.md (+ .json)

Run apart from the other rows: it needs Debian's `postgresql` and root (PostgreSQL runs
as the `postgres` user), and on a 2-core machine its three servers and 8 pipelines share
the same two cores, which is what the row shows, not what a fleet of machines would see.
Nothing asserts a duration.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BENCH_DIR,
    CIKIT,
    PASSWORD,
    base_env,
    free_port,
    log,
    make_repo,
    new_commit,
    run,
    stats,
    tempdir,
)
from benchmarks.report import loadavg, machine, table

PIPELINES = 8
DB_PASSWORD = "bench-db-" + os.urandom(6).hex()
WAITED = re.compile(r"index: waited ([\d.]+)s")
AGAIN = "index: the replica is still copying"  # each costs 0.5 s (ci_kit.serials.Serials.again)


@contextmanager
def postgres(work: Path) -> Iterator[str]:
    """A PostgreSQL cluster of its own on 127.0.0.1 (as tests/test_replicas.py makes it);
    yields devpi's storage spec for its database `devpi`."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    bindir, pg = Path(found[-1]).parent, pwd.getpwnam("postgres")
    base = work / "pg"
    base.mkdir()
    os.chown(base, pg.pw_uid, pg.pw_gid)
    work.chmod(0o755)
    as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(base / "data"), "-U", "postgres", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w",
                    "-o", f"-h 127.0.0.1 -p {port} -k {base}", "start"], check=True, capture_output=True)
    try:
        psql = [*as_pg, str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
        for sql in (f"CREATE ROLE devpi LOGIN PASSWORD '{DB_PASSWORD}'", "CREATE DATABASE devpi OWNER devpi"):
            subprocess.run([*psql, "-c", sql], check=True, capture_output=True)
        yield f"pg8000:host=127.0.0.1,port={port},database=devpi,user=devpi"
    finally:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop"], capture_output=True)


class Servers:
    """ci-kit server start/stop for a set of named servers in one work directory."""

    def __init__(self, work: Path) -> None:
        self.work, self.envs, self.urls = work, {}, {}

    def start(self, name: str, *args: str, **env: str) -> str:
        port = free_port()
        self.envs[name] = {**base_env(), "CI_KIT_USER": "ci", "CI_KIT_PASSWORD": PASSWORD, **env,
                           "CI_KIT_SERVER_DIR": str(self.work / name), "CI_KIT_SERVER_PORT": str(port)}
        run([CIKIT, "server", "start", "-q", *args], env=self.envs[name], timeout=600)
        self.urls[name] = f"http://127.0.0.1:{port}"
        return self.urls[name]

    def stop(self) -> None:
        for env in self.envs.values():
            run([CIKIT, "server", "stop", "-q"], env=env, check=False, timeout=120)


def batch(repos: list[Path], places: list[tuple[str, str]], label: str) -> dict[str, Any]:
    """The 8 pipelines at once, each job 1 then job 2 at its (job 1 URL, job 2 URL)."""
    jobs: list[dict[str, Any]] = []
    errors: list[str] = []

    def pipeline(repo: Path, job1: str, job2: str) -> None:
        env = {**base_env(), "CI_KIT_USER": "ci", "CI_KIT_PASSWORD": PASSWORD}
        new_commit(repo, f"{label} {repo.name}")  # the repo's name too: copies committing in one second get one sha
        try:
            r1 = run([CIKIT, "build-and-push"], cwd=repo, env={**env, "CI_KIT_INDEX_URL": job1})
            r2 = run([CIKIT, "test-and-promote", r1.stdout.strip().splitlines()[-1]], cwd=repo,
                     env={**env, "CI_KIT_INDEX_URL": job2})
        except Exception as exc:  # noqa: BLE001  recorded, not raised: the batch's other pipelines go on
            errors.append(str(exc)[-2000:])
            return
        for r, kind, url in ((r1, "job 1", job1), (r2, "job 2", job2)):
            jobs.append({"seconds": r.seconds, "waited": sum(float(w) for w in WAITED.findall(r.stderr)),
                         "again": 0.5 * r.stderr.count(AGAIN), "job": kind, "on": url})

    started = time.perf_counter()
    threads = [threading.Thread(target=pipeline, args=(repo, *where)) for repo, where in zip(repos, places, strict=False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - started, "jobs": jobs, "errors": errors}


def measure(rounds: int) -> dict[str, Any]:
    work = tempdir("ci-kit-bench-scale-")
    servers = Servers(work)
    data: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine(),
                            "rounds": rounds, "samples": {"standalone": [], "replicas": []}}
    try:
        with postgres(work) as storage:
            solo = servers.start("standalone")
            primary = servers.start("primary", CI_KIT_SERVER_STORAGE=storage, CI_KIT_SERVER_STORAGE_PASSWORD=DB_PASSWORD)
            secret = {"CI_KIT_SERVER_SECRET_FILE": str(work / "primary" / "secret")}
            r1 = servers.start("replica1", "--replica-of", primary, **secret)
            r2 = servers.start("replica2", "--replica-of", primary, **secret)
            repos = [make_repo(work / f"repo{n}") for n in range(PIPELINES)]
            cluster = [((primary, r1, r2)[n % 3], r2 if n % 3 == 1 else r1) for n in range(PIPELINES)]
            variants = {"standalone": [(solo, solo)] * PIPELINES, "replicas": cluster}
            for r in range(1 + rounds):  # round 0 warms up (first builds, first server answers)
                for name in (list(variants) if r % 2 else list(reversed(variants))):
                    res = batch(repos, variants[name], f"{name} {r}")
                    log(f"scale: round {r}{' (warm-up)' if r == 0 else ''} {name}: {res['seconds']:.1f} s, "
                        f"{len(res['jobs'])} jobs, {len(res['errors'])} errors")
                    if r:
                        data["samples"][name].append(res)
    finally:
        servers.stop()
        data["load_after"] = loadavg()
        shutil.rmtree(work, ignore_errors=True)
    return data


def report(data: dict[str, Any]) -> str:
    """RESULTS-scale.md: the batch times side by side and the serial wait per job."""
    rows = []
    for name, samples in data["samples"].items():
        jobs = [j for s in samples for j in s["jobs"]]
        waits = [j["waited"] for j in jobs]
        b, w = stats([s["seconds"] for s in samples]), stats(waits)
        one = {k: stats([j["seconds"] for j in jobs if j.get("job") == k]).get("median", 0) for k in ("job 1", "job 2")}
        rows.append([name, f"{b.get('median', 0):.1f} s [{b.get('min', 0):.1f} – {b.get('max', 0):.1f}]",
                     f"{one['job 1']:.1f} s / {one['job 2']:.1f} s",
                     f"{sum(1 for x in waits if x > 0)} of {len(waits)}",
                     f"{w.get('median', 0):.3f} s / {w.get('mean', 0):.3f} s / {w.get('max', 0):.3f} s",
                     f"{sum(j.get('again', 0) for j in jobs) / max(1, len(jobs)):.2f} s",
                     str(sum(len(s["errors"]) for s in samples))])
    m = data["machine"]
    return "\n".join([
        "# ci-kit benchmark: 8 pipelines on one server vs a primary with two replicas", "",
        (f"Recorded by `scripts/bench scale` on {data['started']}: {m.get('cores')} cores ({m.get('cpu', '?')}), "
        f"load average before {m.get('load_before', '?')}, after {data.get('load_after', '?')} (the machine is shared). "
        f"{data['rounds']} counted rounds after one warm-up, the two set-ups in turn (the order flips every round). "
        "What it is and how to read it: [docs/scale.md](../docs/scale.md)."), "",
        table(["set-up", "8 pipelines at once (wall)", "job 1 / job 2 (median)", "jobs that waited for a serial",
               "serial wait per job: median / mean / max", "pauses for a replica still copying, per job (mean)",
               "failed pipelines"], rows), "",
        ("Standalone: both jobs of every pipeline on one devpi-server (SQLite). Replicas: a primary on PostgreSQL "
        "and two replicas, job 1 on the primary or a replica and job 2 on another replica; every write a replica "
        "gets is relayed to the primary and comes back by replication before it is answered. All of it runs on "
        "the same cores as the pipelines themselves, so the replicas add work here instead of spreading it: the "
        "row measures what the serial wait and the relaying cost, not the throughput of a fleet."),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench scale", description=__doc__)
    p.add_argument("--rounds", type=int, default=2, help="counted rounds of each set-up (default 2)")
    args = p.parse_args(argv)
    data = measure(args.rounds)
    (BENCH_DIR / "RESULTS-scale.json").write_text(json.dumps(data, indent=1, default=str))
    (BENCH_DIR / "RESULTS-scale.md").write_text(report(data))
    log(f"wrote {BENCH_DIR / 'RESULTS-scale.md'}")
    return 1 if any(s["errors"] for v in data["samples"].values() for s in v) else 0


if __name__ == "__main__":
    raise SystemExit(main())
