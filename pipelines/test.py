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
import shlex
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import console, envs, repo, results, runner
from pipelines.config import Settings
from pipelines.errors import NotFound, TestsFailed, UsageError
from pipelines.index import Index, Release, ReleaseFile
from pipelines.release import Spec

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

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


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


def top_level_modules(wheel: Path) -> list[str]:
    """Importable top-level names a wheel installs, read from its file list."""
    names = set()
    with zipfile.ZipFile(wheel) as zf:
        for n in zf.namelist():
            first = n.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in n:
                names.add(first)
            elif n.endswith(".py"):
                names.add(n[:-3])
            elif n.endswith((".so", ".pyd")):
                names.add(n.split(".", 1)[0])
    return sorted(x for x in names if x.isidentifier())


def wheel_fits(filename: str, python: str) -> bool:
    """Whether a wheel's tags admit CPython `python` (pure wheels always do)."""
    from packaging.utils import parse_wheel_filename

    nodot = python.replace(".", "")
    for tag in parse_wheel_filename(filename)[3]:
        if tag.interpreter in ("py3", f"py{nodot}", f"cp{nodot}") or (tag.abi == "abi3" and tag.interpreter.startswith("cp3")
                                                                        and int(tag.interpreter[3:] or 0) <= int(python.split(".")[1])):
            return True
    return False


def junit_counts(path: Path) -> dict[str, int]:
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not path.is_file():
        return counts
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for s in suites:
        for k in counts:
            counts[k] += int(s.get(k, 0))
    return counts


def _plan(release: Release, pythons: list[str]) -> list[tuple[ReleaseFile, str]]:
    """Which file is tested on which Python: every fitting wheel on every Python, and the
    sdist once on the first, so that each file to promote has a result of its own."""
    plan = []
    wheels = [f for f in release.files if f.kind == "wheel"]
    for py in pythons:
        for w in wheels:
            if wheel_fits(w.basename, py):
                plan.append((w, py))
    sdists = [f for f in release.files if f.kind == "sdist"]
    if sdists:
        plan.append((sdists[0], pythons[0]))
    return plan


def test(settings: Settings, spec: Spec, commit: str | None = None, pythons: list[str] | None = None,
         junit_dir: Path | None = None, index: Index | None = None) -> TestReport:
    pythons = pythons or settings.python_versions
    for py in pythons:
        envs.find_python(py)  # fail before any work if an interpreter is missing
    project = settings.project_dir
    repo.require_project(project)
    commit = repo.resolve_commit(project, commit or "HEAD")
    repo.check_version_matches(spec.version, commit)
    index = index or Index.from_settings(settings)
    source = settings.unstable_index
    release = index.release(source, spec.name, spec.version)
    if release is None or not release.files:
        raise NotFound(f"{spec} is not on {source}", "push it first (ci-kit build-and-push), and check the name and version")
    out_dir = junit_dir or settings.path(settings.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = TestReport(spec, commit)
    plan = _plan(release, pythons)
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
        # Runs are independent (own clone, environment and output files): run them side by side,
        # one per core; results are attached in plan order afterwards.
        envs.uv_bin()  # resolve once here: uv's finder reads sysconfig, which is not thread-safe on first use
        workers = max(1, min(len(plan), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = list(pool.map(lambda i: _run_one(settings, spec, commit, plan[i][0], local[plan[i][0].basename], plan[i][1],
                                                    clones[i], tmp, out_dir, modules), range(len(plan))))
        for (f, py), run in zip(plan, runs):
            report.runs.append(run)
            record = json.loads(Path(run.record_path).read_text())
            index.attach_result(f, record)
            console.step(f"test: {f.basename} on Python {py}: {'passed' if run.passed else 'FAILED'} "
                         f"({run.counts['tests']} tests, {run.counts['failures']} failures, {run.counts['errors']} errors); result attached")
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
    junit = out_dir / f"junit-{tag}.xml"
    junit.unlink(missing_ok=True)
    probe_out = tmp / f"probe-{tag}.json"
    metrics_file = tmp / f"metrics-{tag}.json"
    probe_env = {
        "PYTHONPATH": str(PROBE_DIR),
        "PYTHONSAFEPATH": "1",  # `python -m ...` must not put the clone on sys.path
        "PYTEST_ADDOPTS": f"-p ci_kit_probe -p no:cacheprovider --junitxml={junit} -o junit_family=xunit2",
        "CI_KIT_PROBE_OUT": str(probe_out),
        "CI_KIT_PROBE_MODULES": ",".join(modules),
        "CI_KIT_PROBE_DIST": spec.name,
        "CI_KIT_METRICS_FILE": str(metrics_file),
    }
    if settings.tox_env:
        env, argv, child, label = _tox(settings, f, path, py, tmp, tag, probe_env)
    else:
        env = envs.create(tmp / f"env-{tag}", py)
        console.step(f"test: installing {f.basename} into a fresh Python {py} environment")
        extras = f"[{','.join(settings.test_extras)}]" if settings.test_extras else ""
        reqs = [f"{spec.name}{extras} @ {path.as_uri()}"]
        argv = shlex.split(settings.test_command)
        if argv and argv[0] == "pytest":
            reqs.append("pytest")
        envs.install(env, reqs, index_url=settings.dependency_index_url)
        child = runner.child_env({"VIRTUAL_ENV": str(env.path),
                                  "PATH": f"{env.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                                  **probe_env}, drop=("PYTHONHOME",))
        if argv and argv[0] in ("pytest", "py.test"):
            argv[0] = str(env.bin / argv[0])
        label = settings.test_command
    console.step(f"test: {label}  (Python {py}, in the clone, against the installed {f.kind})")
    started = time.monotonic()
    try:
        proc = runner.run(argv, cwd=clone, env=child)
        rc, output = proc.returncode, proc.stdout
    except FileNotFoundError:
        rc, output = 127, f"command not found: {argv[0]}"
    duration = time.monotonic() - started
    counts = junit_counts(junit)
    message = ""
    if rc == PYTEST_NO_TESTS or (rc == 0 and junit.is_file() and counts["tests"] == 0):
        message, rc = "no tests found", rc or PYTEST_NO_TESTS
    elif rc != 0:
        message = "tests failed" if counts["failures"] or counts["errors"] else f"test command exited {rc}"
    probe = _read_probe(probe_out)
    proof = _proof(env, probe, modules, clone)
    if rc == 0 and proof.get("problem"):
        message, rc = proof["problem"], 1
    if rc != 0:
        console.detail(output[-8000:])
    if not junit.is_file():
        _write_junit(junit, spec, py, rc, output)
        counts = junit_counts(junit)
    metrics: dict[str, Any] = {}
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except ValueError:
            metrics = {"error": "metrics file was not JSON"}
    record = results.test_record(
        filename=f.basename, sha256=f.sha256, commit=commit, python=py, python_full=(probe.get("python") if _ran_in(env, probe) else "") or env.full_version(),
        executable=str(env.python), command=[label], retcode=rc, output=console.mask(output),
        counts=counts, junit=junit.read_text(errors="replace"), metrics=metrics, proof=proof, duration=duration)
    record_path = out_dir / f"result-{tag}.json"
    record_path.write_text(json.dumps(record, indent=2))
    return RunResult(f.basename, f.kind, f.sha256, py, record["ci_kit"]["passed"], counts, str(junit), str(record_path), message)


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
                                "use a src/ layout or keep the package out of the test's sys.path")
    return proof


def _write_junit(path: Path, spec: Spec, py: str, rc: int, output: str) -> None:
    """A one-case JUnit file for test commands that write none, so CI always has one."""
    suite = ET.Element("testsuite", name=f"{spec} py{py}", tests="1", failures="0" if rc == 0 else "1", errors="0", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="ci-kit", name="test-command")
    if rc != 0:
        ET.SubElement(case, "failure", message=f"exit {rc}").text = console.mask(output[-4000:])
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _tox(settings: Settings, f: ReleaseFile, path: Path, py: str, tmp: Path, tag: str,
         probe_env: dict[str, str]) -> tuple[envs.Env, list[str], dict[str, str], str]:
    """tox's own way to test a given file: `tox run -e ENV --installpkg FILE`. tox makes
    the environment (with tox-uv, uv does); the probe's variables are passed through."""
    import importlib.util
    import sys

    if importlib.util.find_spec("tox") is None:
        raise UsageError("tox-env is set but tox is not installed", "pip install 'ci-kit[tox]' (tox with tox-uv)")
    name = settings.tox_env.replace("{py}", py.replace(".", ""))
    workdir = tmp / f"tox-{tag}"
    passed = ",".join(sorted(probe_env))
    argv = [sys.executable, "-m", "tox", "run", "-e", name, "--installpkg", str(path), "--workdir", str(workdir),
            "--discover", envs.find_python(py), "-x", f"testenv:{name}.pass_env+={passed}",
            "-x", f"testenv:{name}.base_python=python{py}"]
    child = runner.child_env(probe_env, drop=("PYTHONHOME", "VIRTUAL_ENV"))
    env = envs.Env(workdir / name, workdir / name / "bin" / "python", py)
    return env, argv, child, f"tox run -e {name}"
