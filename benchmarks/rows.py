"""The rows of RESULTS.md, one function each. Every comparison alternates A and B round by
round against the one devpi-server of the run (see harness.alternate)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import flows, seed
from benchmarks.harness import (
    BIN,
    CIKIT,
    DEVPI,
    PASSWORD,
    TOXUV_BIN,
    Server,
    alternate,
    base_env,
    free_port,
    log,
    make_repo,
    new_commit,
    paired_diff,
    paired_ratio,
    run,
    stats,
    step_breakdown,
)

PY = f"{sys.version_info[0]}.{sys.version_info[1]}"


@dataclass
class Plan:
    quick: bool

    @property
    def rounds(self) -> int:  # counted rounds of each comparison
        return 2 if self.quick else 5

    @property
    def warmup(self) -> int:
        return 1

    @property
    def startup_rounds(self) -> int:
        return 5 if self.quick else 20

    @property
    def growth_rounds(self) -> int:
        return 1 if self.quick else 3

    @property
    def sizes_mb(self) -> list[int]:
        return [1, 5] if self.quick else [1, 20, 100]

    @property
    def test_counts(self) -> list[int]:
        return [10, 100] if self.quick else [10, 1000]

    @property
    def releases(self) -> int:
        return 200 if self.quick else 1000


def summarise(samples: dict[str, list[dict[str, Any]]], key: str = "seconds") -> dict[str, Any]:
    return {name: stats([s[key] for s in ss]) for name, ss in samples.items()}


# -- 1 + 2: the whole flow, and its floor ---------------------------------------------------


def row_flow(server: Server, work: Path, plan: Plan) -> dict[str, Any]:
    repo_a = make_repo(work / "flow-a" / "churn-model")
    repo_b = make_repo(work / "flow-b" / "churn-model", flows.add_tox_ini(PY))
    last_dist = work / "last-dist"
    state: dict[str, Any] = {"floor": None, "n": 0}

    def a(r: int) -> dict[str, Any]:
        new_commit(repo_a, f"A round {r}")
        res = flows.flow_a(server, repo_a, work)
        shutil.rmtree(last_dist, ignore_errors=True)
        shutil.copytree(repo_a / "dist", last_dist)
        return res

    def b(bindir: Path, client: str):
        def go(r: int) -> dict[str, Any]:
            new_commit(repo_b, f"B {client} round {r}")
            return flows.flow_b(server, repo_b, work / client, bindir)
        return go

    def floor(r: int) -> dict[str, Any]:
        if state["floor"] is None:
            wheel = next(last_dist.glob("*.whl"))
            state["floor"] = flows.Floor(server, work, repo_a, wheel)
        state["n"] += 1
        index = f"ci/floor{state['n']}"
        server.index().create_index(index, volatile=True)
        return state["floor"].measure(last_dist, index)

    variants = {"A ci-kit": a, "B devpi+tox": b(BIN, "client-tox"), "B devpi+tox-uv": b(TOXUV_BIN, "client-toxuv"),
                "floor": floor}
    samples = alternate(variants, plan.rounds, plan.warmup, "flow")
    A = samples["A ci-kit"]
    return {
        "samples": samples,
        "stats": summarise(samples),
        "job1": stats([s["job1"] for s in A]), "job2": stats([s["job2"] for s in A]),
        "ratio_tox": paired_ratio(A, samples["B devpi+tox"]),
        "ratio_toxuv": paired_ratio(A, samples["B devpi+tox-uv"]),
        "overhead": paired_diff(A, samples["floor"]),
        "floor_tests": stats([s["tests"] for s in samples["floor"]]),
        "floor_upload": stats([s["upload"] for s in samples["floor"]]),
        "floor_build": stats([s["build"] for s in samples["floor"] if "build" in s]),
        "floor_sdist_wheel": stats([s["sdist_wheel"] for s in samples["floor"] if "sdist_wheel" in s]),
        "overhead_above_builds": stats([a["seconds"] - f["seconds"] - f["build"] - f["sdist_wheel"]
                                        for a, f in zip(A, samples["floor"], strict=False) if "build" in f]),
        "b_steps": {name: {k: statistics.median([s["steps"][k] for s in samples[name]]) for k in samples[name][0]["steps"]}
                    for name in ("B devpi+tox", "B devpi+tox-uv")},
    }


# -- 3 + 4: a project with 1,000 releases ---------------------------------------------------


def row_many(server: Server, work: Path, plan: Plan, seeded: dict[str, Any]) -> dict[str, Any]:
    """`seeded`: the project was imported before the server started (__main__, seed.py)."""
    n = seeded["releases"]
    env_a = server.env(user="big")
    cwd = work / "laptop"
    cwd.mkdir(exist_ok=True)
    client = work / "client-big"
    env_b = {**base_env(), "DEVPI_CLIENTDIR": str(client)}
    run([DEVPI, "use", f"{server.url}/big/unstable"], env=env_b, cwd=cwd)
    run([DEVPI, "login", "big", "--password", PASSWORD], env=env_b, cwd=cwd)
    versions = iter(seed.versions(n)[n // 2:])  # from the middle of the project

    def promote_a(r: int) -> dict[str, Any]:
        v = next(versions)
        ran = run([CIKIT, "promote", f"bench-big=={v}"], env=env_a, cwd=cwd)
        return {"seconds": ran.seconds, "version": v}

    def push_b(r: int) -> dict[str, Any]:
        v = next(versions)
        ran = run([DEVPI, "push", f"bench-big=={v}", "big/testing"], env=env_b, cwd=cwd)
        return {"seconds": ran.seconds, "version": v}

    promote = alternate({"A ci-kit promote": promote_a, "B devpi push": push_b}, plan.rounds, plan.warmup, "promote")

    def status_a(r: int) -> dict[str, Any]:
        ran = run([CIKIT, "status", "bench-big"], env=env_a, cwd=cwd)
        return {"seconds": ran.seconds, "lines": len(ran.stdout.splitlines())}

    def list_b(r: int) -> dict[str, Any]:
        ran = run([DEVPI, "list", "bench-big"], env=env_b, cwd=cwd)
        return {"seconds": ran.seconds, "lines": len(ran.stdout.splitlines())}

    def list_all(r: int) -> dict[str, Any]:
        ran = run([DEVPI, "list", "--all", "bench-big"], env=env_b, cwd=cwd)
        return {"seconds": ran.seconds, "lines": len(ran.stdout.splitlines())}

    status = alternate({"A ci-kit status": status_a, "B devpi list": list_b, "(devpi list --all, for reference)": list_all},
                       plan.rounds, plan.warmup, "status")

    # one more write to the big project, as ci-kit push and attach do (devpi's cost per write)
    idx = server.index("big")
    writes = {"upload": [], "attach": []}
    for i in range(3):
        fn, data = seed.tiny_wheel("bench-big", f"9.0.{i}")
        t0 = time.perf_counter()
        idx.request("POST", "big/unstable/", data={":action": "file_upload", "protocol_version": "1",
                                                   "name": "bench-big", "version": f"9.0.{i}"},
                    files={"content": (fn, data)})
        writes["upload"].append(time.perf_counter() - t0)
        rel = idx.release("big/unstable", "bench-big", f"9.0.{i}")
        t0 = time.perf_counter()
        idx.attach_result(rel.files[0], {"note": "benchmark"})
        writes["attach"].append(time.perf_counter() - t0)

    # what the time goes to, for the report
    profiles = {}
    prof_dir = work / "profiles"
    prof_dir.mkdir(exist_ok=True)
    profiles["status"] = pyinstrument(["status", "bench-big"], env_a, cwd, prof_dir / "status.txt")
    profiles["promote"] = pyinstrument(["promote", f"bench-big=={next(versions)}"], env_a, cwd, prof_dir / "promote.txt")

    # clean up: the seeded project and its user
    cleanup = []
    idx = server.index("big")
    for path in ("big/unstable", "big/testing", "big/stable", "big"):
        resp = idx.request("DELETE", path, ok=(200, 201, 403, 404, 409))
        cleanup.append(f"DELETE /{path}: {resp.status_code}")
    return {
        "seeded": seeded, "cleanup": cleanup, "writes": {k: stats(v) for k, v in writes.items()},
        "promote": {"samples": promote, "stats": summarise(promote),
                    "ratio": paired_ratio(promote["A ci-kit promote"], promote["B devpi push"]),
                    "diff": paired_diff(promote["A ci-kit promote"], promote["B devpi push"])},
        "status": {"samples": status, "stats": summarise(status),
                   "ratio": paired_ratio(status["A ci-kit status"], status["B devpi list"])},
        "profiles": profiles,
    }


def pyinstrument(args: list[str], env: dict[str, str], cwd: Path, out: Path) -> str:
    """A wall-clock profile of one ci-kit command (time in children shows as waiting in
    subprocess); returns the text report."""
    ran = run([str(BIN / "pyinstrument"), "--from-path", "-r", "text", "--no-color", "--unicode", "-o", str(out),
               "ci-kit", *args], env=env, cwd=cwd, check=False)
    return out.read_text() if out.is_file() else ran.stderr[-2000:]


# -- 5: start-up ----------------------------------------------------------------------------


def row_startup(plan: Plan) -> dict[str, Any]:
    env = base_env()

    def a(r: int) -> dict[str, Any]:
        return {"seconds": run([CIKIT, "--help"], env=env).seconds}

    def b(r: int) -> dict[str, Any]:
        return {"seconds": run([DEVPI, "--help"], env=env).seconds}

    def py(r: int) -> dict[str, Any]:
        return {"seconds": run([str(BIN / "python"), "-c", "pass"], env=env).seconds}

    samples = alternate({"A ci-kit --help": a, "B devpi --help": b, "python -c pass": py},
                        plan.startup_rounds, 3, "start-up")
    hf = None
    if shutil.which("hyperfine"):
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"ci-kit-bench-hyperfine-{os.getpid()}.json"
        run(["hyperfine", "-N", "--warmup", "3", "--runs", str(plan.startup_rounds), "--export-json", str(out),
             f"{CIKIT} --help", f"{DEVPI} --help"], env=env, check=False)
        if out.is_file():
            import json

            hf = [{"command": r["command"].replace(str(BIN) + "/", ""), "median": r["median"], "min": r["min"],
                   "max": r["max"]} for r in json.loads(out.read_text())["results"]]
            out.unlink()
    return {"samples": samples, "stats": summarise(samples),
            "ratio": paired_ratio(samples["A ci-kit --help"], samples["B devpi --help"]), "hyperfine": hf}


# -- 8 + 9: how cost grows, and memory ------------------------------------------------------


def _blob(mb: int):
    def customise(repo: Path) -> None:
        (repo / "src" / "churn_model" / "bench_blob.bin").write_bytes(os.urandom(mb * 1024 * 1024))
    return customise


def _tests(n: int):
    def customise(repo: Path) -> None:
        extra = n - 4  # the example has 4 tests of its own
        (repo / "tests" / "test_bench_many.py").write_text(
            "import pytest\n\nimport churn_model\n\n\n"
            f"@pytest.mark.parametrize('i', range({extra}))\n"
            "def test_many(i):\n    assert churn_model.predict is not None\n")
    return customise


def row_growth(server: Server, work: Path, plan: Plan) -> dict[str, Any]:
    configs: dict[str, tuple[Any, dict[str, str], dict[str, Any]]] = {
        "example": (None, {}, {"size_mb": 0, "tests": 4, "pythons": 1}),
    }
    for mb in plan.sizes_mb:
        configs[f"wheel {mb} MB"] = (_blob(mb), {}, {"size_mb": mb, "tests": 4, "pythons": 1})
    for n in plan.test_counts:
        configs[f"{n} tests"] = (_tests(n), {}, {"size_mb": 0, "tests": n, "pythons": 1})
    configs["3 Pythons"] = (None, {"CI_KIT_PYTHON_VERSIONS": "3.10,3.11,3.12"}, {"size_mb": 0, "tests": 4, "pythons": 3})

    variants = {}
    for i, (name, (customise, env_extra, _)) in enumerate(configs.items()):
        repo = make_repo(work / f"growth-{i}" / "churn-model", customise)

        def go(r: int, repo: Path = repo, env_extra: dict[str, str] = env_extra, name: str = name) -> dict[str, Any]:
            new_commit(repo, f"{name} round {r}")
            res = flows.flow_a(server, repo, work, env_extra={"CI_KIT_PYTHON_VERSIONS": PY, **env_extra},
                               memory=True, label=f"g{name.replace(' ', '_')}")
            import json

            manifest = json.loads((repo / "dist" / "ci-kit-build.json").read_text())
            res["file_sizes"] = {f["filename"]: f["size"] for f in manifest["files"]}
            return res

        variants[name] = go
    samples = alternate(variants, plan.growth_rounds, 0, "growth")
    out = {"configs": {k: v[2] for k, v in configs.items()}, "samples": samples, "stats": summarise(samples),
           "job1": summarise(samples, "job1"), "job2": summarise(samples, "job2")}
    out["memory"] = {name: {"job1": _peak_max([s["peak1"] for s in ss]), "job2": _peak_max([s["peak2"] for s in ss])}
                     for name, ss in samples.items()}
    return out


def _peak_max(peaks: list[dict[str, float]]) -> dict[str, float]:
    return {k: max(p[k] for p in peaks) for k in peaks[0]}


def row_memory(server: Server, work: Path, plan: Plan) -> dict[str, Any]:
    repo = make_repo(work / "memory" / "churn-model")
    runs = []
    for r in range(1 if plan.quick else 3):
        new_commit(repo, f"memory round {r}")
        res = flows.flow_a(server, repo, work, memory=True, label="mem")
        runs.append({"peak1": res["peak1"], "peak2": res["peak2"], "seconds": res["seconds"]})
        log(f"memory: round {r + 1}: job1 {res['peak1']}, job2 {res['peak2']}")
    return {"runs": runs, "job1": _peak_max([x["peak1"] for x in runs]), "job2": _peak_max([x["peak2"] for x in runs])}


# -- profiles and measurements behind the proposals ----------------------------------------


def row_profile(server: Server, work: Path, plan: Plan) -> dict[str, Any]:
    """pyinstrument on both jobs, and the single steps of the flow measured alone (3 times
    each, median) so each proposal has a number."""
    repo = make_repo(work / "profile" / "churn-model")
    env = server.env()
    prof_dir = work / "profiles"
    prof_dir.mkdir(exist_ok=True)
    new_commit(repo, "profile")
    out = work / "profile-job1.txt"
    profiles = {"job1": pyinstrument(["build-and-push", "--output", str(out)], env, repo, prof_dir / "job1.txt")}
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    profiles["job2"] = pyinstrument(["test-and-promote", outputs["requirement"], "--commit", outputs["commit"]],
                                    env, repo, prof_dir / "job2.txt")

    # single steps alone
    benv = base_env()
    uv = str(BIN / "uv")
    py = str(BIN / "python")
    scratch = work / "steps"
    files = sorted((repo / "dist").glob("churn_model-*"))
    wheel = next(p for p in files if p.name.endswith(".whl"))
    sdist = next(p for p in files if p.name.endswith(".tar.gz"))
    n = 3

    def each(label: str, argv_fn, env=benv, cwd=None) -> tuple[str, float]:
        times = []
        for _ in range(n):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            times.append(run(argv_fn(), env=env, cwd=cwd).seconds)
        return label, statistics.median(times)

    def env_then(install: list[str]):
        def argv():
            run([uv, "venv", "--quiet", "--python", py, str(scratch / "e")], env=benv)
            return [uv, "pip", "install", "--quiet", "--python", str(scratch / "e" / "bin" / "python"), *install]
        return argv

    counter = iter(range(1000))

    def fresh_sdist():
        # at a new path each time, as each round's sdist is new: uv then builds it (no cache hit)
        copy = scratch / f"s{next(counter)}" / sdist.name
        copy.parent.mkdir()
        shutil.copy2(sdist, copy)
        return env_then([f"churn-model[test] @ {copy.as_uri()}", "pytest"])()

    steps = [
        each("python -c pass (interpreter start)", lambda: [py, "-c", "pass"]),
        each("ci-kit --version", lambda: [CIKIT, "--version"]),
        each("python -m build --installer uv (what ci-kit build runs)",
             lambda: [py, "-m", "build", "--installer", "uv", "--outdir", str(scratch), str(repo)], cwd=repo),
        each("uv build (sdist, then wheel from it)", lambda: [uv, "build", "--quiet", "--out-dir", str(scratch), str(repo)], cwd=repo),
        each("python -m twine check --strict (2 files)", lambda: [py, "-m", "twine", "check", "--strict", *map(str, files)]),
        each("git clone of the commit (local)", lambda: ["git", "clone", "-q", "--no-checkout", str(repo), str(scratch / "c")]),
        each("uv venv", lambda: [uv, "venv", "--quiet", "--python", py, str(scratch / "e")]),
        each("uv pip install wheel[test] + pytest (warm cache; after uv venv)",
             env_then([f"churn-model[test] @ {wheel.as_uri()}", "pytest"])),
        each("uv pip install sdist[test] + pytest (a new sdist: uv builds a wheel; after uv venv)", fresh_sdist),
        each("python -m build --sdist (alone)", lambda: [py, "-m", "build", "--installer", "uv", "--sdist", "--outdir", str(scratch), str(repo)], cwd=repo),
        each("python -m build --wheel (alone, from the tree)", lambda: [py, "-m", "build", "--installer", "uv", "--wheel", "--outdir", str(scratch), str(repo)], cwd=repo),
        each("python -c 'import requests'", lambda: [py, "-c", "import requests"]),
        each("python -c 'import http.client, json'", lambda: [py, "-c", "import http.client, json"]),
        each("python -c 'import twine.commands.check'", lambda: [py, "-c", "import twine.commands.check"]),
        each("python -c 'import readme_renderer.rst, packaging.metadata'", lambda: [py, "-c", "import readme_renderer.rst, packaging.metadata"]),
    ]
    steps.append(each("python -c 'import readme_renderer.markdown, packaging.metadata'",
                      lambda: [py, "-c", "import readme_renderer.markdown, packaging.metadata"]))
    steps.append(("POST /+login (devpi checks the password)", _login_time(server)))
    steps.append(("GET of one release's JSON (logged-in session, warm)", _get_time(server, outputs["requirement"])))
    shutil.rmtree(scratch, ignore_errors=True)
    return {"profiles": profiles, "steps": steps, "proposals": _proposals(repo, sdist, wheel, work, plan)}


def _concurrently(argvs: list[list[str]], cwd: Path, env: dict[str, str]) -> float:
    import subprocess

    t0 = time.perf_counter()
    procs = [subprocess.Popen(a, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for a in argvs]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"failed: {argvs}")
    return time.perf_counter() - t0


def _proposals(repo: Path, sdist: Path, wheel: Path, work: Path, plan: Plan) -> dict[str, Any]:
    """Two changes to the core, measured A/B round by round as the comparisons are:
    building sdist and wheel at the same time, and job 2's two test runs at the same time."""
    benv = base_env()
    uv, py = str(BIN / "uv"), str(BIN / "python")
    out_dir = work / "proposal-out"
    n = iter(range(10_000))

    def seq_build(r: int) -> dict[str, Any]:
        shutil.rmtree(out_dir, ignore_errors=True)
        return {"seconds": run([py, "-m", "build", "--installer", "uv", "--outdir", str(out_dir), str(repo)], cwd=repo, env=benv).seconds}

    def par_build(r: int) -> dict[str, Any]:
        shutil.rmtree(out_dir, ignore_errors=True)
        return {"seconds": _concurrently([[py, "-m", "build", "--installer", "uv", f"--{k}", "--outdir", str(out_dir), str(repo)]
                                          for k in ("sdist", "wheel")], repo, benv)}

    def one_run(path: Path) -> list[list[str]]:
        """uv venv; uv pip install FILE[test] pytest; pytest — one of job 2's runs, as argv lists."""
        i = next(n)
        env_dir = work / "proposal-envs" / f"e{i}"
        copy = work / "proposal-files" / f"f{i}" / path.name  # a new path: uv builds a new sdist, no cache hit
        copy.parent.mkdir(parents=True)
        shutil.copy2(path, copy)
        return [[uv, "venv", "--quiet", "--python", py, str(env_dir)],
                [uv, "pip", "install", "--quiet", "--python", str(env_dir / "bin" / "python"),
                 f"churn-model[test] @ {copy.as_uri()}", "pytest"],
                [str(env_dir / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"]]

    def sh(cmds: list[list[str]]) -> list[str]:
        import shlex

        return ["sh", "-ec", " && ".join(shlex.join(c) for c in cmds)]

    def seq_tests(r: int) -> dict[str, Any]:
        return {"seconds": run(sh(one_run(wheel) + one_run(sdist)), cwd=repo, env=benv).seconds}

    def par_tests(r: int) -> dict[str, Any]:
        return {"seconds": _concurrently([sh(one_run(wheel)), sh(one_run(sdist))], repo, benv)}

    builds = alternate({"python -m build (sdist, then wheel from it)": seq_build,
                        "sdist and wheel built at the same time": par_build}, plan.rounds, 1, "proposal build")
    tests = alternate({"wheel run, then sdist run": seq_tests, "both runs at the same time": par_tests},
                      plan.rounds, 1, "proposal job 2")
    shutil.rmtree(work / "proposal-envs", ignore_errors=True)
    return {name: {"stats": summarise(smp), "diff": paired_diff(*smp.values())}
            for name, smp in (("build", builds), ("job2 runs", tests))}


def _login_time(server: Server, n: int = 5) -> float:
    import requests

    times = []
    with requests.Session() as sess:
        sess.trust_env = False
        for _ in range(n):
            t0 = time.perf_counter()
            sess.post(f"{server.url}/+login", json={"user": "ci", "password": PASSWORD},
                      headers={"Accept": "application/json"}).raise_for_status()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _get_time(server: Server, requirement: str, n: int = 5) -> float:
    name, version = requirement.split("==")
    idx = server.index()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        idx.release("ci/testing", name, version)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- 6 + 7: the image of a promoted release --------------------------------------------------

BASE_REF_FILE = Path("/var/lib/ci-kit-docker/python-base-bookworm.ref")
SMOKE = ["--tenure", "3", "--monthly", "95.5", "--support-calls", "4"]
B_DOCKERFILE = """\
FROM {base}
RUN python3 -m venv /opt/app \\
 && /opt/app/bin/pip install --no-cache-dir --index-url {simple} {requirement}
ENTRYPOINT ["/opt/app/bin/churn-predict"]
"""


def image_available() -> str:
    """Why the image rows cannot run here, or "" when they can."""
    if not (shutil.which("docker") and shutil.which("docker-registry")):
        return "docker or docker-registry is not installed"
    if not BASE_REF_FILE.is_file():
        return f"no base image reference in {BASE_REF_FILE} (scripts/make-base-image makes one)"
    if run(["docker", "version", "--format", "{{.Server.Version}}"], env=base_env(), check=False).returncode != 0:
        return "no Docker engine is running (scripts/start-docker starts one)"
    return ""


class Registry:
    """A registry of the benchmark's own (Debian's docker-registry) on 127.0.0.1, in the
    temporary directory, so nothing is left in a shared one."""

    def __init__(self, work: Path) -> None:
        import subprocess

        self.port = free_port()
        root = work / "registry"
        root.mkdir()
        cfg = root / "config.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                       f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{self.port}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=open(root / "registry.log", "wb"))  # noqa: SIM115 - the registry writes to it while it runs
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the benchmark's docker-registry did not start")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# Row 6's products: the example as it is (no dependencies at all), and the example with
# the dependency stack a served model usually has, from PyPI (a package registry, which
# these machines may reach). Pinned, so every round locks the same dependency set.
REBUILD_VARIANTS = {
    "example (no dependencies)": [],
    "example + numpy, pandas, scikit-learn": ["numpy==2.2.6", "pandas==2.2.3", "scikit-learn==1.6.1"],
}


def _with_dependencies(deps: list[str]):
    def customise(repo: Path) -> None:
        pyproject = repo / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace("dependencies = []", "dependencies = " + json.dumps(deps), 1))
    return customise


def _rebuild(server: Server, work: Path, plan: Plan, base: str, reg: Registry, *, name: str, deps: list[str]) -> dict[str, Any]:
    """Row 6: each round releases a new version with the same dependencies (a new commit,
    the whole flow, not timed), then A: `ci-kit image` with the engine's layer cache
    holding the previous version's image, then B: the cold build of the same release
    (`--no-cache`). A always runs first: B's fresh layers would otherwise serve A."""
    slug = "rebuild-" + ("deps" if deps else "plain")
    repo = make_repo(work / "image" / slug, _with_dependencies(deps) if deps else None)
    env = {**server.env()}
    target = f"{reg.host}/bench/{slug}"
    smoke = "churn-predict " + " ".join(SMOKE)
    samples: dict[str, list[dict[str, Any]]] = {"A new version, warm": [], "B same release, --no-cache": []}
    last_req = ""
    for r in range(plan.warmup + plan.rounds):
        new_commit(repo, f"{slug} round {r}")
        last_req = flows.flow_a(server, repo, work, label=slug)["requirement"]
        argv = [CIKIT, "image", last_req, "--push", target, "--image-base", base, "--smoke", smoke]
        a = run(argv, cwd=repo, env=env)
        b = run([*argv, "--no-cache"], cwd=repo, env=env)
        counted = r >= plan.warmup
        for key, ran in (("A new version, warm", a), ("B same release, --no-cache", b)):
            log(f"image rebuild, {name}: round {r + 1}{'' if counted else ' (warm-up)'} {key}: {ran.seconds:.2f} s")
            if counted:
                samples[key].append({"seconds": ran.seconds, "round": r, "steps": step_breakdown(ran.stderr, ran.seconds)})
    a_name, b_name = list(samples)
    out: dict[str, Any] = {"dependencies": deps, "samples": samples, "stats": summarise(samples),
                           "ratio": paired_ratio(samples[a_name], samples[b_name])}
    # row 7 for this product too: the naive single-stage image of the last release
    if deps:
        ctx = work / f"{slug}-naive"
        ctx.mkdir()
        simple = f"{server.url}/ci/testing/+simple/"
        # PyPI may sit behind a TLS proxy with a CA of this machine's (ci-kit image mounts
        # the same bundle into its fetch): the naive build gets it as a file beside pip.
        from ci_kit.image.wheels import ca_bundle

        text = B_DOCKERFILE.format(base=base, requirement=last_req, simple=simple)
        extra = f"--index-url {simple} --extra-index-url https://pypi.org/simple"
        if ca_bundle():
            shutil.copyfile(os.path.realpath(ca_bundle()), ctx / "ca.crt")
            text = text.replace("RUN python3", "COPY ca.crt /tmp/ca.crt\nRUN python3", 1)
            extra = "--cert /tmp/ca.crt " + extra
        text = text.replace(f"--index-url {simple}", extra)
        (ctx / "Dockerfile").write_text(text)
        out["dockerfile_naive"] = text.replace(server.url, "URL")
        naive = f"{target}-naive:latest"
        run(["docker", "build", "--network", "host", "-t", naive, str(ctx)], env=base_env())
        ours = f"{target}:{last_req.split('==', 1)[1].replace('+', '-')}"
        out["sizes"] = {}
        for ref in (ours, naive):
            ran = run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], env=base_env(), check=False)
            out["sizes"][ref.rsplit("/", 1)[-1]] = int(ran.stdout.strip() or 0)
    return out


def row_image(server: Server, work: Path, plan: Plan) -> dict[str, Any]:
    why = image_available()
    if why:
        return {"skipped": why}
    base = BASE_REF_FILE.read_text().strip()
    images_before = set(run(["docker", "images", "-q", "--all"], env=base_env(), check=False).stdout.split())
    reg = Registry(work)
    created: list[str] = []
    try:
        repo = make_repo(work / "image" / "churn-model")
        rel = flows.flow_a(server, repo, work, label="img")  # a promoted release (ci/testing), not timed
        req = rel["requirement"]
        version = req.split("==", 1)[1]
        env = {**server.env()}
        ctx = work / "image-b"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(B_DOCKERFILE.format(base=base, requirement=req,
                                                             simple=f"{server.url}/ci/testing/+simple/"))
        a_repo, b_repo = f"{reg.host}/bench/churn-a", f"{reg.host}/bench/churn-b"
        tag_v = version.replace("+", "-")
        created += [f"{a_repo}:{tag_v}", f"{b_repo}:{tag_v}"]

        def a(no_cache: bool):
            def go(r: int) -> dict[str, Any]:
                argv = [CIKIT, "image", req, "--push", a_repo, "--image-base", base, "--smoke",
                        "churn-predict " + " ".join(SMOKE)] + (["--no-cache"] if no_cache else [])
                ran = run(argv, cwd=repo, env=env)
                return {"seconds": ran.seconds, "steps": step_breakdown(ran.stderr, ran.seconds)}
            return go

        def b(no_cache: bool):
            def go(r: int) -> dict[str, Any]:
                benv = base_env()
                t = {}
                t["build"] = run(["docker", "build", "--network", "host", "-t", f"{b_repo}:{tag_v}", *(["--no-cache"] if no_cache else []),
                                  str(ctx)], env=benv).seconds
                t["smoke"] = run(["docker", "run", "--rm", "--network", "host", f"{b_repo}:{tag_v}", *SMOKE], env=benv).seconds
                t["push"] = run(["docker", "push", f"{b_repo}:{tag_v}"], env=benv).seconds
                return {"seconds": sum(t.values()), "steps": t}
            return go

        cold = alternate({"A ci-kit image --no-cache": a(True), "B docker build --no-cache + run + push": b(True)},
                         plan.rounds, plan.warmup, "image (cold)")
        warm = alternate({"A ci-kit image": a(False), "B docker build + run + push": b(False)},
                         plan.rounds, plan.warmup, "image (nothing changed)")
        sizes = {}
        for ref in created:
            ran = run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], env=base_env(), check=False)
            sizes[ref.rsplit("/", 1)[-1]] = int(ran.stdout.strip() or 0)
        out = {"base": base}
        for key, samples in (("cold", cold), ("warm", warm)):
            a_name, b_name = list(samples)
            out[key] = {"samples": samples, "stats": summarise(samples), "ratio": paired_ratio(samples[a_name], samples[b_name])}
        out["sizes"] = sizes
        out["dockerfile_b"] = (ctx / "Dockerfile").read_text().replace(server.url, "URL")
        out["rebuild"] = {name: _rebuild(server, work, plan, base, reg, name=name, deps=deps) for name, deps in REBUILD_VARIANTS.items()}
        return out
    finally:
        # every image of the two repositories (earlier rounds' images lost their tag but not
        # the repository), and the local tag ci-kit image gives the release's image
        listing = run(["docker", "images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"], env=base_env(), check=False).stdout
        ids = {line.split()[2] for line in listing.splitlines()
               if len(line.split()) == 3 and line.split()[0].startswith(f"{reg.host}/bench/")}
        ids |= {line.split()[2] for line in listing.splitlines()
                if len(line.split()) == 3 and line.split()[0] == "ci-kit/churn-model"} - images_before
        run(["docker", "rmi", "-f", *created, *sorted(ids)], env=base_env(), check=False)
        # the stages of every build of this row (untagged), and nothing that was there before
        dangling = set(run(["docker", "images", "-q", "--filter", "dangling=true"], env=base_env(), check=False).stdout.split())
        if dangling - images_before:
            run(["docker", "rmi", "-f", *sorted(dangling - images_before)], env=base_env(), check=False)
        reg.stop()
