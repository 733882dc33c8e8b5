"""The whole flow done two ways, and its floor.

A: `ci-kit build-and-push` then `ci-kit test-and-promote NAME==VERSION --commit SHA`.
B: devpi-client as its documentation shows it: `devpi use`, `devpi login`, `devpi upload`,
   `devpi test` (tox runs the tests from the sdist's tox.ini), `devpi push`.
Floor: the parts no flow can avoid, measured alone: running the tests in an environment
   that is already there (once per file the flow tests) and uploading the files once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from benchmarks.harness import BIN, CIKIT, PASSWORD, Server, base_env, git, run, step_breakdown

# The tox.ini `devpi test` needs; written into the benchmark's temporary copy only.
# The benchmark's devpi indexes have no PyPI mirror (nothing here may reach the internet
# through devpi-server), so tox takes pytest from PyPI directly, as ci-kit's uv does.
TOX_INI = """\
[tox]
envlist = py{nodot}

[testenv]
deps = pytest
extras = test
set_env =
    PIP_INDEX_URL = https://pypi.org/simple
    UV_INDEX_URL = https://pypi.org/simple
commands = pytest {{posargs}}
"""


def add_tox_ini(python: str):
    def customise(repo: Path) -> None:
        (repo / "tox.ini").write_text(TOX_INI.format(nodot=python.replace(".", "")))
    return customise


def flow_a(server: Server, repo: Path, out_dir: Path, *, env_extra: dict[str, str] | None = None,
           memory: bool = False, label: str = "a") -> dict[str, Any]:
    """Job 1 then job 2 with ci-kit, as CI runs them; returns the times of both."""
    env = {**server.env(), **(env_extra or {})}
    outfile = out_dir / f"job1-{label}.txt"
    outfile.unlink(missing_ok=True)
    j1 = run([CIKIT, "build-and-push", "--output", str(outfile)], cwd=repo, env=env, memory=memory)
    outputs = dict(line.split("=", 1) for line in outfile.read_text().splitlines() if "=" in line)
    req, commit = outputs["requirement"], outputs["commit"]
    j2 = run([CIKIT, "test-and-promote", req, "--commit", commit], cwd=repo, env=env, memory=memory)
    res: dict[str, Any] = {"seconds": j1.seconds + j2.seconds, "job1": j1.seconds, "job2": j2.seconds,
                           "requirement": req, "steps1": step_breakdown(j1.stderr, j1.seconds),
                           "steps2": step_breakdown(j2.stderr, j2.seconds)}
    if memory:
        res["peak1"], res["peak2"] = j1.peak, j2.peak
    return res


A_COMMANDS = ["ci-kit build-and-push --output FILE", "ci-kit test-and-promote NAME==VERSION --commit SHA"]
B_COMMANDS = ["devpi use URL/dv/unstable", "devpi login dv --password ***", "devpi upload",
              "devpi test --select . NAME==VERSION", "devpi push NAME==VERSION dv/testing"]


def flow_b(server: Server, repo: Path, clientdir: Path, bindir: Path, *, user: str = "dv") -> dict[str, Any]:
    """The same work with devpi-client; a fresh client directory each time, as a CI job has.
    `devpi test --select .` tests the wheel as well as the sdist (ci-kit tests both)."""
    shutil.rmtree(clientdir, ignore_errors=True)
    env = {**base_env(), "DEVPI_CLIENTDIR": str(clientdir), "PATH": f"{bindir}:{base_env()['PATH']}"}
    devpi = str(bindir / "devpi")
    steps: dict[str, float] = {}
    steps["use"] = run([devpi, "use", f"{server.url}/{user}/unstable"], cwd=repo, env=env).seconds
    steps["login"] = run([devpi, "login", user, "--password", PASSWORD], cwd=repo, env=env).seconds
    up = run([devpi, "upload"], cwd=repo, env=env)
    steps["upload (build + upload)"] = up.seconds
    m = re.search(r"churn_model-(\S+?)\.tar\.gz", up.stdout + up.stderr)
    if not m:
        raise RuntimeError("could not read the version from devpi upload's output:\n" + up.stdout[-2000:])
    req = f"churn-model=={m.group(1)}"
    steps["test (tox, sdist + wheel)"] = run([devpi, "test", "--select", ".", req], cwd=repo, env=env).seconds
    steps["push"] = run([devpi, "push", req, f"{user}/testing"], cwd=repo, env=env).seconds
    return {"seconds": sum(steps.values()), "steps": steps, "requirement": req}


class Floor:
    """The tests run in a ready environment + the files uploaded once, each measured alone."""

    def __init__(self, server: Server, work: Path, repo: Path, wheel: Path, runs_per_flow: int = 2) -> None:
        self.server = server
        self.repo = repo
        self.runs = runs_per_flow
        self.env_dir = work / "floor-env"
        uv = str(BIN / "uv")
        run([uv, "venv", "--quiet", "--python", str(BIN / "python"), str(self.env_dir)], env=base_env())
        run([uv, "pip", "install", "--quiet", "--python", str(self.env_dir / "bin" / "python"),
             f"churn-model[test] @ {wheel.as_uri()}", "pytest"], env=base_env())
        self.pytest_env = {**base_env(), "VIRTUAL_ENV": str(self.env_dir),
                           "PATH": f"{self.env_dir / 'bin'}:{base_env()['PATH']}"}
        self.index = server.index()  # one logged-in session, as a minimal uploader would have

    def measure(self, dist: Path, index: str) -> dict[str, Any]:
        from ci_kit.dists import read_metadata

        tests = 0.0
        for _ in range(self.runs):
            tests += run([str(self.env_dir / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"],
                         cwd=self.repo, env=self.pytest_env).seconds
        import time

        files = sorted(p for p in dist.iterdir() if p.name.endswith((".whl", ".tar.gz")))
        t0 = time.perf_counter()
        for p in files:
            self.index.upload(index, p, read_metadata(p))
        upload = time.perf_counter() - t0
        return {"seconds": tests + upload, "tests": tests, "upload": upload, "files": [p.name for p in files],
                **self.builds(dist)}

    def builds(self, dist: Path) -> dict[str, float]:
        """Not part of the floor as row 2 defines it, but measured in the same rounds, so the
        report can say what is left above floor + building: the sdist and the wheel built
        side by side from two clones (`python -m build --installer uv`, what job 1 runs), and
        a wheel built from the sdist (`uv build`, what installing the sdist costs in job 2)."""
        import subprocess
        import tempfile
        import time

        with tempfile.TemporaryDirectory(prefix="floor-build-") as tmp:
            t = Path(tmp)
            for kind in ("sdist", "wheel"):
                git("clone", "-q", "--shared", str(self.repo), str(t / kind), cwd=t)
            t0 = time.perf_counter()
            procs = [subprocess.Popen([str(BIN / "python"), "-m", "build", f"--{kind}", "--installer", "uv",
                                       "--outdir", str(t / "out"), str(t / kind)], env=base_env(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for kind in ("sdist", "wheel")]
            if any(p.wait() != 0 for p in procs):
                raise RuntimeError("floor: python -m build failed")
            build = time.perf_counter() - t0
            sdist = next(dist.glob("*.tar.gz"))
            sdist_wheel = run([str(BIN / "uv"), "build", "--quiet", "--wheel", "--out-dir", str(t / "from-sdist"), str(sdist)],
                              env=base_env()).seconds
        return {"build": build, "sdist_wheel": sdist_wheel}
