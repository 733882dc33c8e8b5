"""`ci-kit test NAME==VERSION`: the exact bytes from the unstable index, tested in fresh
environments from a fresh clone of the commit they were built from.

Each file is downloaded from the index and its sha256 checked against the index's
listing before it is installed, so what is tested is what will be promoted. The
product's source is never importable: the clone's source tree is not on sys.path and a
pytest plugin records where the product's modules were imported from.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_kit import console, envs, evidence, repo, results, runner, sandbox, testdeps
from ci_kit import junit as junit_mod
from ci_kit.config import Settings
from ci_kit.dists import top_level_modules, wheel_fits
from ci_kit.errors import EnvFailed, NotFound, ProjectError, TestsFailed, UsageError
from ci_kit.index import Index, Release, ReleaseFile
from ci_kit.release import Spec

PROBE_DIR = Path(__file__).with_name("probe")
PYTEST_NO_TESTS = 5


@dataclass
class RunResult:
    filename: str
    kind: str
    sha256: str
    python: str
    passed: bool
    counts: dict[str, int]
    junit_path: str
    record_path: str
    message: str = ""
    record: dict[str, Any] = field(default_factory=dict, repr=False)
    failed_tests: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "record"}


@dataclass
class TestReport:
    __test__ = False
    spec: Spec
    commit: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {"requirement": str(self.spec), "commit": self.commit, "passed": self.passed,
                "runs": [r.to_json() for r in self.runs]}


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _plan(release: Release, pythons: list[str]) -> list[tuple[ReleaseFile, str]]:
    """Which file is tested on which Python: every wheel on every Python it fits; the
    sdist on every Python that no wheel serves, and at least once, so that each file to
    promote has a result of its own and every configured Python is covered."""
    plan = []
    wheels = [f for f in release.files if f.kind == "wheel"]
    for py in pythons:
        for w in wheels:
            if wheel_fits(w.basename, py):
                plan.append((w, py))
    sdists = [f for f in release.files if f.kind == "sdist"]
    if sdists:
        bare = [py for py in pythons if not any(wheel_fits(w.basename, py) for w in wheels)]
        plan += [(sdists[0], py) for py in (bare or pythons[:1])]
    return plan


def built_from(settings: Settings, index: Index, release: Release, commit: str | None) -> str:
    """The commit job 1 recorded for the release (its build record); a --commit that
    differs is refused, final versions included. A release whose build records are
    missing or incomplete (job 1 died between uploads) is refused before any test."""
    build, problems = evidence.build_of(index, release, settings.index.trusted)
    if build is None:
        raise NotFound(f"{release.name}=={release.version} on {release.index} is incomplete: " + "; ".join(problems),
                       "run job 1 (ci-kit build-and-push) again on the commit that built it; it completes the release")
    if commit is not None:
        wanted = repo.resolve_commit(settings.project_dir, commit)
        if wanted != build.commit:
            raise ProjectError(f"{release.name}=={release.version} was built from commit {build.commit[:12]}, not {wanted[:12]}",
                               f"test the commit job 1 printed (--commit {build.commit[:12]}), or build this commit as a new version")
    return build.commit


def test(settings: Settings, spec: Spec, commit: str | None = None, pythons: list[str] | None = None,
         junit_dir: Path | None = None, index: Index | None = None, only_python: str | None = None) -> TestReport:
    pythons = pythons or settings.test.python_versions
    if only_python is not None and only_python not in pythons:
        raise UsageError(f"--only-python {only_python} is not one of python-versions ({', '.join(pythons)})",
                         "pass the whole matrix as python-versions (CI_KIT_PYTHON_VERSIONS) and this job's Python")
    for py in ([only_python] if only_python else pythons):
        envs.find_python(py)  # fail before any work if an interpreter is missing
    project = settings.project_dir
    repo.require_project(project)
    index = index or Index.from_settings(settings)
    source = settings.index.unstable_index
    release = index.release(source, spec.name, spec.version)
    if release is None or not release.files:
        raise NotFound(f"{spec} is not on {source}", "push it first (ci-kit build-and-push), and check the name and version")
    commit = built_from(settings, index, release, commit)
    repo.resolve_commit(project, commit)
    repo.check_version_matches(spec.version, commit)
    out_dir = junit_dir or settings.path(settings.test.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = TestReport(spec, commit)
    plan = _plan(release, pythons)
    if only_python:  # one CI job of a per-Python matrix runs its share of the plan: the sdist runs once
        plan = [(f, py) for f, py in plan if py == only_python]
    if not plan:
        raise NotFound(f"{spec} on {source} has no file installable on Python {', '.join(pythons)}",
                       "build a wheel for these Pythons, or change python-versions")

    with runner.temp_dir("ci-kit-test-") as tmp_s:
        tmp = Path(tmp_s)
        console.step(f"test: a fresh clone of {commit[:12]} per run")
        clones = {i: repo.fresh_clone(project, commit, tmp / f"clone-{i}") for i in range(len(plan))}
        downloads = tmp / "files"
        downloads.mkdir()
        local: dict[str, Path] = {}
        for f, _ in plan:
            if f.basename not in local:
                local[f.basename] = index.download(f, downloads)
                console.step(f"test: {f.basename} from {source}, sha256 {f.sha256[:16]}… verified")
        modules = next((top_level_modules(local[f.basename]) for f, _ in plan if f.kind == "wheel"), [])
        testdeps.check(settings, local[plan[0][0].basename], clones[0])
        # Runs are independent (own clone, environment and output files): run them side by side,
        # one per core; results are attached in plan order afterwards.
        envs.uv_bin()  # resolve once here: uv's finder reads sysconfig, which is not thread-safe on first use
        workers = max(1, min(len(plan), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = list(pool.map(lambda i: _run_one(settings, spec, commit, plan[i][0], local[plan[i][0].basename], plan[i][1],
                                                    clones[i], tmp, out_dir, modules), range(len(plan))))
        for (f, py), run in zip(plan, runs):
            report.runs.append(run)
            index.attach_result(f, run.record)  # from memory: another run's file in out_dir is not ours
            console.step(f"test: {f.basename} on Python {py}: {'passed' if run.passed else 'FAILED'} "
                         f"({_plural(run.counts['tests'], 'test')}, {_plural(run.counts['failures'], 'failure')}, "
                         f"{_plural(run.counts['errors'], 'error')}); result attached")
    failed = [r for r in report.runs if not r.passed]
    if failed:
        first = failed[0]
        raise TestsFailed(f"{spec}: {first.message or 'tests failed'} ({first.filename}, Python {first.python})"
                          + (f" and {len(failed) - 1} more run(s)" if len(failed) > 1 else ""),
                          f"JUnit XML in {out_dir}; the failing output is above. Nothing was promoted.", report=report)
    return report


def _run_one(settings: Settings, spec: Spec, commit: str, f: ReleaseFile, path: Path, py: str, clone: Path,
             tmp: Path, out_dir: Path, modules: list[str]) -> RunResult:
    tag = f"py{py}-{f.kind}"
    # Everything a run writes goes to a folder of its own first; out_dir gets copies at the
    # end, for CI to publish. Concurrent runs in one checkout never read each other's files.
    own = tmp / f"out-{tag}"
    own.mkdir()
    junit = own / f"junit-{tag}.xml"
    probe_out = own / f"probe-{tag}.json"
    metrics_file = own / f"metrics-{tag}.json"
    box = sandbox.Box(settings, tmp / f"box-{tag}", clone)  # the tests write only in the box; outputs copied back
    probe_env = {
        "PYTHONPATH": str(PROBE_DIR),
        "PYTHONSAFEPATH": "1",  # `python -m ...` must not put the clone on sys.path
        # pytest splits PYTEST_ADDOPTS into words: paths with a space (a Jenkins workspace) and the
        # suite's name (after what ran, so CI's test reports tell the runs apart) are quoted
        "PYTEST_ADDOPTS": (f"-p ci_kit_probe -p no:cacheprovider --junitxml={shlex.quote(str(box.output(junit)))} "
                           "-o junit_family=xunit2 -o " + shlex.quote(f"junit_suite_name={spec.name} Python {py} {f.kind}")),
        "CI_KIT_PROBE_OUT": str(box.output(probe_out)),
        "CI_KIT_PROBE_MODULES": ",".join(modules),
        "CI_KIT_PROBE_DIST": spec.name,
        "CI_KIT_METRICS_FILE": str(box.output(metrics_file)),
    }
    if settings.test.tox_env:
        env, argv, child, label = _tox(settings, f, path, py, tmp, tag, probe_env, box)
    else:
        env = envs.create(tmp / f"env-{tag}", py)
        console.step(f"test: installing {f.basename} into a fresh Python {py} environment")
        extras = f"[{','.join(settings.test.test_extras)}]" if settings.test.test_extras else ""
        reqs = [f"{spec.name}{extras} @ {path.as_uri()}"]
        argv = shlex.split(settings.test.test_command)
        if runs_pytest(argv):
            reqs.append("pytest")
        envs.install(env, reqs + testdeps.install_args(settings, clone), index_url=settings.test.dependency_index_url)
        child = box.env({"VIRTUAL_ENV": str(env.path), "PATH": f"{env.bin}{os.pathsep}{os.environ.get('PATH', '')}", **probe_env})
        if argv and argv[0] in ("pytest", "py.test"):
            argv[0] = str(env.bin / argv[0])
        elif argv and _PYTHON.fullmatch(argv[0]):  # `python -m pytest`: the environment's Python, whatever PATH says
            argv[0] = str(env.python)
        label = settings.test.test_command
    console.step(f"test: {label}  (Python {py}, in the clone, against the installed {f.kind})")
    started = time.monotonic()
    try:
        proc = box.run(argv, cwd=clone, env=child)
        rc, output = proc.returncode, proc.stdout
    except FileNotFoundError:
        rc, output = 127, f"command not found: {argv[0]}"
    duration = time.monotonic() - started
    probe = _read_probe(probe_out)
    ran = _python_that_ran(env, probe)
    counts = junit_mod.counts(junit)
    counted = counts is not None
    message = _verdict(rc, counts, settings.test.require_junit)
    if not message and ran and ".".join(ran.split(".")[:2]) != py:
        message = f"the tests ran on Python {ran}, not {py}" + (" (check the tox env's base_python)" if settings.test.tox_env else "")
    proof = _proof(env, probe, modules, clone)
    if not message and proof.get("problem"):
        message = proof["problem"]
    if message and rc != 0:
        message = "; ".join(x for x in (message, testdeps.missing_module_hint(output, path, clone)) if x)
    if message and rc == 0:
        rc = PYTEST_NO_TESTS if "no tests" in message else 1
    if rc != 0:
        console.detail(output[-8000:])
    if counts is None:  # CI still gets a JUnit file to show; the record says it was not counted
        junit_mod.write_stand_in(junit, f"{spec} py{py}", rc, message or output)
        counts = {"tests": 0, "failures": 0 if rc == 0 else 1, "errors": 0, "skipped": 0}
    metrics: dict[str, Any] = {}
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except ValueError:
            metrics = {"error": "metrics file was not JSON"}
    record = results.test_record(
        filename=f.basename, sha256=f.sha256, commit=commit, python=".".join(ran.split(".")[:2]) if ran else py,
        python_full=ran or py, executable=str(env.python), command=[label], retcode=rc, output=console.mask(output),
        counts=counts, counted=counted, junit=console.mask(junit.read_text(errors="replace")), metrics=metrics,
        proof=proof, duration=duration)
    (own / f"result-{tag}.json").write_text(json.dumps(record, indent=2))
    published = [_publish(own / n, out_dir) for n in (junit.name, f"result-{tag}.json")]
    return RunResult(f.basename, f.kind, f.sha256, py, record["ci_kit"]["passed"], counts, str(published[0]),
                     str(published[1]), message, record, junit_mod.failures(junit) if counted else [])


_PYTHON = re.compile(r"python(3(\.\d+)?)?")


def runs_pytest(argv: list[str]) -> bool:
    """Whether the test command runs pytest: `pytest ...`, `py.test ...` or the form CI
    configurations and pytest's docs use, `python -m pytest ...`. ci-kit then installs
    pytest with the release, as it asks pytest for the JUnit XML it counts."""
    if not argv:
        return False
    if argv[0] in ("pytest", "py.test"):
        return True
    return bool(_PYTHON.fullmatch(argv[0])) and argv[1:3] in (["-m", "pytest"], ["-m", "py.test"])


def _verdict(rc: int, counts: dict[str, int] | None, require_junit: bool) -> str:
    """Why a run is not a pass ("" if it is): a pass needs exit 0 and, unless JUnit is
    waived, the JUnit XML ci-kit asked for showing at least one test and no failure."""
    if rc == PYTEST_NO_TESTS or (counts is not None and counts["tests"] == 0 and rc == 0):
        return "no tests found"
    if rc != 0:
        return "tests failed" if counts and (counts["failures"] or counts["errors"]) else f"test command exited {rc}"
    if counts is None and require_junit:
        return ("the test command wrote no JUnit XML, so ci-kit cannot tell that tests ran "
                "(ci-kit asks pytest for it; set require-junit = false for a command that cannot write it)")
    return ""


def _python_that_ran(env: envs.Env, probe: dict[str, Any]) -> str:
    """The full version of the Python the tests ran on: the probe's word when it ran in
    this environment, else the environment's interpreter; "" when there is none."""
    if _ran_in(env, probe) and probe.get("python"):
        return str(probe["python"])
    if not env.python.exists():
        return ""
    return env.full_version()


def _publish(path: Path, out_dir: Path) -> Path:
    """Copy a run's file to out_dir atomically (last run wins; readers never see half a file)."""
    dest = out_dir / path.name
    part = out_dir / f".{path.name}.{os.getpid()}.part"
    shutil.copyfile(path, part)
    os.replace(part, dest)
    return dest


def _read_probe(probe_out: Path) -> dict[str, Any]:
    """What the pytest plugin recorded inside the test run; {} when pytest did not run it."""
    try:
        return json.loads(probe_out.read_text())
    except (OSError, ValueError):
        return {}


def _ran_in(env: envs.Env, probe: dict[str, Any]) -> bool:
    return str(probe.get("executable", "")).startswith(str(env.path) + os.sep)


def _proof(env: envs.Env, data: dict[str, Any], modules: list[str], clone: Path) -> dict[str, str]:
    """Where the product's modules were imported from during the test run."""
    if not data:
        return {"method": "none", "note": "the test command did not run pytest; import location not recorded"}
    # When the plugin ran in this environment's interpreter, it has said where that installs;
    # otherwise (another interpreter, an older record) the environment's Python is asked,
    # so the modules are always checked against this environment.
    site = (data.get("site_packages") if _ran_in(env, data) else None) or env.site_packages()
    proof: dict[str, str] = {"method": "pytest plugin", "installed_version": data.get("version", "")}
    for mod, file in data.get("modules", {}).items():
        proof[mod] = file
        if not any(file.startswith(s + os.sep) for s in site):
            where = "the checkout" if file.startswith(str(clone)) else (file or "nowhere")
            proof["problem"] = (f"the tests imported {mod} from {where}, not from the installed package; "
                                "for a package at the repository root run pytest with --import-mode=append "
                                "(test-command = \"pytest --import-mode=append\"), or use a src/ layout")
    return proof


def _tox(settings: Settings, f: ReleaseFile, path: Path, py: str, tmp: Path, tag: str,
         probe_env: dict[str, str], box: sandbox.Box) -> tuple[envs.Env, list[str], dict[str, str], str]:
    """tox's own way to test a given file: `tox run -e ENV --installpkg FILE`. tox makes
    the environment (with tox-uv, uv does); the probe's variables are passed through."""
    import importlib.util
    import sys

    if importlib.util.find_spec("tox") is None:
        raise UsageError("tox-env is set but tox is not installed", "pip install 'ci-kit[tox]' (tox with tox-uv)")
    name = settings.test.tox_env.replace("{py}", py.replace(".", "")).replace("{py_dot}", py)
    workdir = box.root / f"tox-{tag}"
    passed = ",".join(sorted(probe_env))
    python = envs.find_python(py)
    common = ["-e", name, "--workdir", str(workdir), "--discover", python]
    # tox reads overrides by the section names of the configuration format in use
    # (tox.ini/setup.cfg, [tool.tox] in pyproject.toml, tox.toml) and ignores those of
    # the others, so the overrides are given in every form.
    for section in ("testenv", f"testenv:{name}", "tool.tox.env_run_base", f"tool.tox.env.{name}", "env_run_base", f"env.{name}"):
        common += ["-x", f"{section}.pass_env+={passed}", "-x", f"{section}.base_python={python}"]
    # tox makes the environment and installs the exact file as ci-kit (as uv does without tox);
    # only the product's commands run in the box (sandbox.py), on that environment.
    # tox-uv turns base_python into a spec ("cpython3.12") that uv looks up on PATH: an
    # interpreter ci-kit found elsewhere (pyenv's) must be there first, and uv must never
    # download one instead (this machine may be offline; the tests would run on another Python).
    lookup = {"PATH": os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "")]), "UV_PYTHON_DOWNLOADS": "never"}
    prep = runner.run([sys.executable, "-m", "tox", "run", "--notest", "--installpkg", str(path), *common],
                      env=runner.child_env(lookup, drop=("PYTHONHOME", "VIRTUAL_ENV")))
    if prep.returncode != 0 and re.search(r"environments? not found|conflicting with base python|conflicting factors", prep.stdout):
        why = [l.strip() for l in prep.stdout.splitlines() if re.search(r"not found|conflicting", l)][:1]
        named = [l.strip() for l in prep.stdout.splitlines() if l.strip()][-1:] if why and "not found" in why[0] else []
        raise UsageError(f"tox-env {settings.test.tox_env!r} (here {name}): " + " ".join(why + named),
                         "name an environment the tox configuration defines (`tox list`); `{py}` becomes e.g. 311, `{py_dot}` 3.11")
    if prep.returncode != 0:
        raise EnvFailed(f"tox could not make the {name} environment: " + " / ".join(prep.stdout.strip().splitlines()[-4:]),
                        "check the tox configuration, the product's dependencies and dependency-index-url")
    box.give(workdir)
    argv = [sys.executable, "-m", "tox", "run", "--skip-pkg-install", *common]
    # in the box the environment exists already: the interpreter's folder goes last on PATH,
    # so that it is found without putting ci-kit's own tools before the product's
    found_last = {"PATH": os.pathsep.join([os.environ.get("PATH", ""), str(Path(python).parent)]), "UV_PYTHON_DOWNLOADS": "never"}
    child = box.env({**probe_env, **found_last})
    env = envs.Env(workdir / name, workdir / name / "bin" / "python", py)
    return env, argv, child, f"tox run -e {name}"
