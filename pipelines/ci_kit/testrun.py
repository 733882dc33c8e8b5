"""`ci-kit test NAME==VERSION`: the exact bytes from the unstable index, tested in fresh
environments from a fresh clone of the commit they were built from. (The module is
`testrun`, its entry `run_tests`: names pytest does not collect.)

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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci_kit import console, envs, evidence, outcome, repo, results, runner, sandbox, testdeps
from ci_kit import junit as junit_mod
from ci_kit.config import IndexSettings, ProductTestSettings, QualitySettings, under
from ci_kit.contract import Counts
from ci_kit.dists import top_level_modules, wheel_fits
from ci_kit.errors import EnvFailed, NotFound, ProductTestsFailed, ProjectError, UsageError
from ci_kit.index import Index
from ci_kit.listing import Release, ReleaseFile
from ci_kit.quality import baseline as quality_baseline
from ci_kit.quality import record as quality_record
from ci_kit.release import Spec
from ci_kit.testfiles import Source, index_source
from ci_kit.testreport import RunReport, RunResult

if TYPE_CHECKING:
    from ci_kit.quality.gate import Side
    from ci_kit.quality.rules import Rules

PROBE_DIR = Path(__file__).with_name("probe")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _plan(files: list[ReleaseFile], pythons: list[str]) -> list[tuple[ReleaseFile, str]]:
    """Which file is tested on which Python: every wheel on every Python it fits; the
    sdist on every Python that no wheel serves, and at least once, so that each file to
    promote has a result of its own and every configured Python is covered."""
    plan: list[tuple[ReleaseFile, str]] = []
    wheels = [f for f in files if f.kind == "wheel"]
    for py in pythons:
        plan.extend((w, py) for w in wheels if wheel_fits(w.basename, py))
    sdists = [f for f in files if f.kind == "sdist"]
    if sdists:
        bare = [py for py in pythons if not any(wheel_fits(w.basename, py) for w in wheels)]
        plan += [(sdists[0], py) for py in (bare or pythons[:1])]
    return plan


def built_from(index: Index, release: Release, trusted: frozenset[str], project_dir: Path, commit: str | None) -> str:
    """The commit job 1 recorded for the release (its build record); a --commit that
    differs is refused, final versions included. A release whose build records are
    missing or incomplete (job 1 died between uploads) is refused before any test."""
    build, problems = evidence.build_of(index, release, trusted)
    if build is None:
        raise NotFound(f"{release.name}=={release.version} on {release.index} is incomplete: " + "; ".join(problems),
                       "run job 1 (ci-kit build-and-push) again on the commit that built it; it completes the release")
    if commit is not None:
        wanted = repo.resolve_commit(project_dir, commit)
        if wanted != build.commit:
            raise ProjectError(f"{release.name}=={release.version} was built from commit {build.commit[:12]}, not {wanted[:12]}",
                               f"test the commit job 1 printed (--commit {build.commit[:12]}), or build this commit as a new version")
    return build.commit


def pythons_to_run(configured: Sequence[str], only_python: str | None) -> list[str]:
    """The Pythons of the plan, each checked to exist before any work."""
    pythons = list(configured)
    if only_python is not None and only_python not in pythons:
        raise UsageError(f"--only-python {only_python} is not one of python-versions ({', '.join(pythons)})",
                         "pass the whole matrix as python-versions (CI_KIT_PYTHON_VERSIONS) and this job's Python")
    for py in ([only_python] if only_python else pythons):
        envs.find_python(py)
    return pythons


def _release(index: Index, source: str, spec: Spec) -> Release:
    release = index.release(source, spec.name, spec.version)
    if release is None or not release.files:
        raise NotFound(f"{spec} is not on {source}", "push it first (ci-kit build-and-push), and check the name and version")
    return release


def run_tests(index: Index, where: IndexSettings, cfg: ProductTestSettings, project_dir: Path, spec: Spec, *,
         commit: str | None = None, pythons: Sequence[str] | None = None, junit_dir: Path | None = None,
         only_python: str | None = None, secret_files: Sequence[str] = (),
         quality: QualitySettings | None = None) -> RunReport:
    """Test the release from where.unstable_index on each Python of the plan; attach each
    run's record to the file it tested; raise ProductTestsFailed (with the report) if any failed.
    With a response shift bound in `quality`, each run's evaluation also stores the shift
    against the gate's baseline, so that promote need not import scipy (quality/shift.py)."""
    pythons = pythons_to_run(pythons or cfg.python_versions, only_python)
    repo.require_project(project_dir)
    release = _release(index, where.unstable_index, spec)
    commit = built_from(index, release, where.trusted, project_dir, commit)
    against = quality_baseline.for_test_stage(index, where, quality, spec.name, spec.version)
    source = index_source(index, release, alongside=only_python is not None)  # a matrix job: others attach alongside
    return run_plan(source, cfg, project_dir, spec, commit, pythons=pythons, junit_dir=junit_dir,
                    only_python=only_python, secret_files=secret_files, against=against)


def run_plan(source: Source, cfg: ProductTestSettings, project_dir: Path, spec: Spec, commit: str, *, pythons: list[str],
             junit_dir: Path | None, only_python: str | None, secret_files: Sequence[str],
             against: tuple[Rules, Side] | None = None) -> RunReport:
    """The one loop of job 2, whatever the files' source: each file of the plan on its
    Python, in its own fresh clone, environment and sandbox, side by side. `against`: the
    quality gate's baseline, to store the response shift against (none for local files)."""
    repo.resolve_commit(project_dir, commit)
    repo.check_version_matches(spec.version, commit)
    out_dir = junit_dir or under(project_dir, cfg.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = [(f, py) for f, py in _plan(source.files, pythons) if only_python in (None, py)]  # a CI matrix job runs its share
    if not plan:
        raise NotFound(f"{spec} on {source.where} has no file installable on Python {', '.join(pythons)}",
                       "build a wheel for these Pythons, or change python-versions")
    report = RunReport(spec, commit, attached=source.attach is not None)
    with runner.temp_dir("ci-kit-test-") as tmp_s:
        tmp = Path(tmp_s)
        jobs = _prepare(source, cfg, plan, project_dir, commit=commit, tmp=tmp)
        modules = next((top_level_modules(j.path) for j in jobs if j.file.kind == "wheel"), [])
        # Runs are independent (own clone, environment and output files): run them side by side,
        # one per core; results are attached in plan order afterwards.
        envs.uv_bin()  # resolve once here: uv's finder reads sysconfig, which is not thread-safe on first use
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            runs = list(pool.map(lambda j: _run_one(cfg, spec, commit, j, out_dir, modules=modules, secret_files=secret_files,
                                                    against=against), jobs))
        for job, run in zip(jobs, runs, strict=True):  # pool.map: one run per job
            report.runs.append(run)
            console.step(f"test: {job.file.basename} on Python {job.python}: {'passed' if run.passed else 'FAILED'} "
                         f"({_plural(run.out['counts']['tests'], 'test')}, {_plural(run.out['counts']['failures'], 'failure')}, "
                         f"{_plural(run.out['counts']['errors'], 'error')}); "
                         + ("result attached" if source.attach is not None else "local files: nothing attached to any index"))
        if source.attach is not None:  # in plan order, from memory: another run's file in out_dir is not ours
            source.attach([(job.file, run.record) for job, run in zip(jobs, runs, strict=True)])
    _raise_if_failed(report, out_dir)
    return report


@dataclass(frozen=True)
class _Job:
    """One run of the plan: the file (downloaded and checked), the Python, its own clone."""

    file: ReleaseFile
    path: Path
    python: str
    clone: Path
    tmp: Path

    @property
    def tag(self) -> str:
        return f"py{self.python}-{self.file.kind}"


def _prepare(source: Source, cfg: ProductTestSettings, plan: list[tuple[ReleaseFile, str]], project_dir: Path, *,
             commit: str, tmp: Path) -> list[_Job]:
    """A fresh clone per run and each file once, fetched with its sha256 checked;
    the configured extras, groups and requirement files checked against them."""
    console.step(f"test: a fresh clone of {commit[:12]} per run")
    downloads = tmp / "files"
    downloads.mkdir()
    local: dict[str, Path] = {}
    jobs = []
    for i, (f, py) in enumerate(plan):
        if f.basename not in local:
            local[f.basename] = source.fetch(f, downloads)
        jobs.append(_Job(f, local[f.basename], py, repo.fresh_clone(project_dir, commit, tmp / f"clone-{i}"), tmp))
    testdeps.check(cfg, jobs[0].path, jobs[0].clone)
    return jobs


def _raise_if_failed(report: RunReport, out_dir: Path) -> None:
    failed = [r for r in report.runs if not r.passed]
    if failed:
        first = failed[0].out
        raise ProductTestsFailed(f"{report.spec}: {first['message'] or 'tests failed'} ({first['filename']}, Python {first['python']})"
                          + (f" and {len(failed) - 1} more run(s)" if len(failed) > 1 else ""),
                          f"JUnit XML in {out_dir}; the failing output is above. Nothing was promoted.", report=report)


@dataclass(frozen=True)
class _Files:
    """Where one run's files go: a folder of its own first (concurrent runs in one checkout
    never read each other's files); out_dir gets copies at the end, for CI to publish."""

    own: Path
    tag: str

    @property
    def junit(self) -> Path:
        return self.own / f"junit-{self.tag}.xml"

    @property
    def probe(self) -> Path:
        return self.own / f"probe-{self.tag}.json"

    @property
    def metrics(self) -> Path:
        return self.own / f"metrics-{self.tag}.json"

    @property
    def result(self) -> Path:
        return self.own / f"result-{self.tag}.json"


def _run_one(cfg: ProductTestSettings, spec: Spec, commit: str, job: _Job, out_dir: Path, *, modules: list[str],
             secret_files: Sequence[str], against: tuple[Rules, Side] | None = None) -> RunResult:
    files = _Files(job.tmp / f"out-{job.tag}", job.tag)
    files.own.mkdir()
    box = sandbox.Box(cfg.pass_env, cfg.python_versions, secret_files, job.tmp / f"box-{job.tag}", job.clone)
    probe_env = _probe_env(spec, job, files, modules, box)
    if cfg.tox_env:
        env, argv, child, label = _tox(cfg.tox_env, job, probe_env, box)
    else:
        env, argv, child, label = _uv(cfg, spec.name, job, probe_env, box)
    console.step(f"test: {label}  (Python {job.python}, in the clone, against the installed {job.file.kind})")
    rc, output, duration = _execute(box, argv, job.clone, child)
    probe = outcome.read_probe(files.probe)
    ran = outcome.python_that_ran(env, probe)
    counts = junit_mod.counts(files.junit)
    proof = outcome.import_proof(env, probe, job.clone)
    message = outcome.failure_message(rc, counts, require_junit=cfg.require_junit, ran=ran, py=job.python,
                                      tox=bool(cfg.tox_env), proof=proof)
    evaluation, message, output = quality_record.of_run(cfg.evaluate_command, box, env, child, job.clone,
                                                        metrics_file=files.metrics, message=message, output=output,
                                                        against=against)
    if message and rc != 0:
        message = "; ".join(x for x in (message, testdeps.missing_module_hint(output, job.path, job.clone)) if x)
    if message and rc == 0:
        rc = outcome.PYTEST_NO_TESTS if "no tests" in message else 1
    if rc != 0:
        console.detail(output[-8000:])
    counted = counts is not None
    if counts is None:  # CI still gets a JUnit file to show; the record says it was not counted
        junit_mod.write_stand_in(files.junit, f"{spec.name} Python {job.python} {job.file.kind}", rc, message or output)
        counts = Counts(tests=0, failures=0 if rc == 0 else 1, errors=0, skipped=0)
    record = results.test_record(
        filename=job.file.basename, sha256=job.file.sha256, commit=commit, python=".".join(ran.split(".")[:2]) if ran else job.python,
        python_full=ran or job.python, executable=str(env.python), command=[label], retcode=rc, output=console.mask(output),
        counts=counts, counted=counted, junit=console.mask(files.junit.read_text(errors="replace")),
        metrics=evaluation["metrics"] if evaluation else {}, proof=proof, duration=duration, evaluation=evaluation)
    files.result.write_text(json.dumps(record, indent=2))
    junit_out, record_out = (_publish(p, out_dir) for p in (files.junit, files.result))
    return RunResult({"filename": job.file.basename, "kind": job.file.kind, "sha256": job.file.sha256, "python": job.python,
                      "passed": record["ci_kit"]["passed"], "counts": counts, "junit_path": str(junit_out),
                      "record_path": str(record_out), "message": message,
                      "failed_tests": junit_mod.failures(files.junit) if counted else []}, record)



def _probe_env(spec: Spec, job: _Job, files: _Files, modules: list[str], box: sandbox.Box) -> dict[str, str]:
    """What the probe plugin and pytest are told: where to write, what to watch."""
    return {
        "PYTHONPATH": str(PROBE_DIR),
        "PYTHONSAFEPATH": "1",  # `python -m ...` must not put the clone on sys.path
        # pytest splits PYTEST_ADDOPTS into words: paths with a space (a Jenkins workspace) and the
        # suite's name (after what ran, so CI's test reports tell the runs apart) are quoted
        "PYTEST_ADDOPTS": (f"-p ci_kit_probe -p no:cacheprovider --junitxml={shlex.quote(str(box.output(files.junit)))} "
                           "-o junit_family=xunit2 -o "
                           + shlex.quote(f"junit_suite_name={spec.name} Python {job.python} {job.file.kind}")),
        "CI_KIT_PROBE_OUT": str(box.output(files.probe)),
        "CI_KIT_PROBE_MODULES": ",".join(modules),
        "CI_KIT_PROBE_DIST": spec.name,
        "CI_KIT_METRICS_FILE": str(box.output(files.metrics)),
    }


def _uv(cfg: ProductTestSettings, name: str, job: _Job, probe_env: dict[str, str],
        box: sandbox.Box) -> tuple[envs.Env, list[str], dict[str, str], str]:
    """A fresh uv environment with the exact file (and its test extras, groups,
    requirements, and pytest when the command runs it); the command's argv in it."""
    env = envs.create(job.tmp / f"env-{job.tag}", job.python)
    console.step(f"test: installing {job.file.basename} into a fresh Python {job.python} environment")
    extras = f"[{','.join(cfg.test_extras)}]" if cfg.test_extras else ""
    reqs = [f"{name}{extras} @ {job.path.as_uri()}"]
    argv = shlex.split(cfg.test_command)
    if runs_pytest(argv):
        reqs.append("pytest")
    envs.install(env, reqs + testdeps.install_args(cfg, job.clone), index_url=cfg.dependency_index_url)
    child = box.env({"VIRTUAL_ENV": str(env.path), "PATH": f"{env.bin}{os.pathsep}{os.environ.get('PATH', '')}", **probe_env})
    if argv and argv[0] in ("pytest", "py.test"):
        argv[0] = str(env.bin / argv[0])
    elif argv and _PYTHON.fullmatch(argv[0]):  # `python -m pytest`: the environment's Python, whatever PATH says
        argv[0] = str(env.python)
    return env, argv, child, cfg.test_command


def _execute(box: sandbox.Box, argv: list[str], clone: Path, child: dict[str, str]) -> tuple[int, str, float]:
    """(exit code, output, seconds) of the product's command in its box."""
    started = time.monotonic()
    try:
        proc = box.run(argv, cwd=clone, env=child)
        rc, output = proc.returncode, proc.stdout
    except FileNotFoundError:
        rc, output = 127, f"command not found: {argv[0]}"
    return rc, output, time.monotonic() - started


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


def _publish(path: Path, out_dir: Path) -> Path:
    """Copy a run's file to out_dir atomically (last run wins; readers never see half a file)."""
    dest = out_dir / path.name
    part = out_dir / f".{path.name}.{os.getpid()}.part"
    shutil.copyfile(path, part)
    os.replace(part, dest)
    return dest


def _tox(tox_env: str, job: _Job, probe_env: dict[str, str], box: sandbox.Box) -> tuple[envs.Env, list[str], dict[str, str], str]:
    """tox's own way to test a given file: `tox run -e ENV --installpkg FILE`. tox makes
    the environment (with tox-uv, uv does); the probe's variables are passed through."""
    import importlib.util
    import sys

    py, tag, path = job.python, job.tag, job.path

    if importlib.util.find_spec("tox") is None:
        raise UsageError("tox-env is set but tox is not installed", "pip install 'ci-kit[tox]' (tox with tox-uv)")
    name = tox_env.replace("{py}", py.replace(".", "")).replace("{py_dot}", py)
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
        why = [line.strip() for line in prep.stdout.splitlines() if re.search(r"not found|conflicting", line)][:1]
        named = [line.strip() for line in prep.stdout.splitlines() if line.strip()][-1:] if why and "not found" in why[0] else []
        raise UsageError(f"tox-env {tox_env!r} (here {name}): " + " ".join(why + named),
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
