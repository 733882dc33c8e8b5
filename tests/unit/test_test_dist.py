"""`ci-kit test --dist DIR` in-process: the files `ci-kit build` left in a folder, tested
without any index (the autouse guard fails any index request). Each bad folder is one
line and its exit code before anything runs; a good one goes through job 2's own loop
(testrun.run_plan) with the product's run replaced by a stand-in, so what is checked
here is the plumbing: which files, which hashes, nothing attached, the exit code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ci_kit import cli, testdeps
from ci_kit import testrun as teststage
from ci_kit.build import MANIFEST, Manifest
from ci_kit.contract import Counts
from ci_kit.testreport import RunResult

from .fakes import committed_product, git, losing_index, write_built

Capture = pytest.CaptureFixture[str]
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed product and, in its dist/, the two files of churn-model 1.0.0 with the
    manifest `ci-kit build` writes (naming that commit)."""
    monkeypatch.setenv("CI_KIT_SANDBOX", "none")
    root = committed_product(tmp_path / "product", ignore="dist/\nci-kit-results/\n")
    write_built(root, git("rev-parse", "HEAD", cwd=root))
    return root


def _nothing_to_check(*_args: Any, **_kw: Any) -> None:
    """testdeps.check reads the clone's test extras against the files: nothing here."""


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The product's runs replaced: each records which file (and its bytes' sha256, from
    the copy that would be installed) on which Python, and fails if its clone has FAIL."""
    calls: list[dict[str, Any]] = []

    def run_one(cfg: Any, spec: Any, commit: str, job: Any, out_dir: Path, **kw: Any) -> RunResult:
        failed = (job.clone / "FAIL").exists()
        calls.append({"file": job.file.basename, "python": job.python, "installed_sha256": hashlib.sha256(job.path.read_bytes()).hexdigest(),
                      "commit": commit})
        counts = Counts(tests=3, failures=int(failed), errors=0, skipped=0)
        return RunResult({"filename": job.file.basename, "kind": job.file.kind, "sha256": job.file.sha256, "python": job.python,
                          "passed": not failed, "counts": counts, "junit_path": str(out_dir / f"junit-{job.tag}.xml"),
                          "record_path": str(out_dir / f"result-{job.tag}.json"), "message": "1 test failed" if failed else "",
                          "failed_tests": ["tests/test_x.py::test_made_to_fail"] if failed else []})

    monkeypatch.setattr(teststage, "_run_one", run_one)
    monkeypatch.setattr(testdeps, "check", _nothing_to_check)
    return calls


def _main(*argv: str) -> int:
    try:
        return cli.main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code or 0)


def _one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("ci-kit: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_the_built_files_are_tested_with_no_index_and_nothing_attached(project: Path, ran: list[dict[str, Any]],
                                                                      tmp_path: Path, capsys: Capture) -> None:
    summary = tmp_path / "summary.md"
    assert _main("test", "--dist", str(project / "dist"), "--python", "3.12", "--project-dir", str(project),
                 "--json", "--summary", str(summary)) == 0
    data = json.loads(capsys.readouterr().out)
    manifest = Manifest.read(project / "dist")
    assert data["requirement"] == "churn-model==1.0.0" and data["commit"] == manifest.commit
    assert data["attached"] is False and data["passed"] is True
    # each file once on 3.12, installed from a copy with the bytes that were built
    assert sorted((c["file"], c["python"], c["installed_sha256"]) for c in ran) == sorted(
        (f.filename, "3.12", f.sha256) for f in manifest.files)
    assert {(r["filename"], r["sha256"]) for r in data["runs"]} == {(f.filename, f.sha256) for f in manifest.files}
    text = summary.read_text()
    assert "the built files (not uploaded)" in text and "never count for promotion" in text
    assert all(f"`{f.filename}` sha256 `{f.sha256}`" in text for f in manifest.files)


def test_a_failing_run_of_the_built_files_exits_9_with_its_name_in_the_summary(project: Path, ran: list[dict[str, Any]],
                                                                               tmp_path: Path, capsys: Capture) -> None:
    (project / "FAIL").write_text("x")
    git("add", "FAIL", cwd=project)
    git("commit", "-q", "-m", "a failing test", cwd=project)
    manifest = json.loads((project / "dist" / MANIFEST).read_text())
    manifest["commit"] = git("rev-parse", "HEAD", cwd=project)
    (project / "dist" / MANIFEST).write_text(json.dumps(manifest))
    summary = tmp_path / "summary.md"
    assert _main("test", "--dist", str(project / "dist"), "--python", "3.12", "--project-dir", str(project),
                 "--summary", str(summary)) == 9
    assert "churn-model==1.0.0: 1 test failed" in _one_error(capsys.readouterr().err)
    assert "- `tests/test_x.py::test_made_to_fail` (wheel, Python 3.12)" in summary.read_text()


def _other_release(project: Path) -> None:
    (project / "dist" / MANIFEST).write_text((project / "dist" / MANIFEST).read_text().replace('"1.0.0"', '"2.0.0"'))


@pytest.mark.parametrize("change, argv, code, says", [
    (None, ["test"], 2, "NAME==VERSION is required (or --dist DIR: the built files)"),
    (None, ["test", "--dist", "{p}/nowhere"], 3, "--dist {p}/nowhere: no such folder"),
    (None, ["test", "--dist", "{p}"], 3, "--dist {p}: no ci-kit-build.json there, so no built files to test"),
    (None, ["test", "--dist", "{p}/dist", "churn-model==2.0"], 3, "--dist {p}/dist holds churn-model==1.0.0, not churn-model==2.0"),
    (None, ["test", "--dist", "{p}/dist", "other==1.0.0"], 3, "holds churn-model==1.0.0, not other==1.0.0"),
    (None, ["test", "--dist", "{p}/dist", "churn model"], 2, "malformed requirement 'churn model'"),
    (_other_release, ["test", "--dist", "{p}/dist", "churn-model==1.0.0"], 3, "holds churn-model==2.0.0, not churn-model==1.0.0"),
    (lambda p: (p / "dist" / "churn_model-1.0.0.tar.gz").write_bytes(b"other bytes"), ["test", "--dist", "{p}/dist"], 4,
     "churn_model-1.0.0.tar.gz is sha256 "),
    (lambda p: (p / "dist" / "churn_model-1.0.0-py3-none-any.whl").unlink(), ["test", "--dist", "{p}/dist"], 4,
     "churn_model-1.0.0-py3-none-any.whl is missing; the build manifest says "),
    (lambda p: (p / "dist" / MANIFEST).write_text((p / "dist" / MANIFEST).read_text().replace('"commit": "', '"commit": "f00')),
     ["test", "--dist", "{p}/dist"], 3, "which the repository at {p} does not have"),
    (None, ["test", "--dist", "{p}/dist", "--commit", "HEAD~5"], 3, "commit HEAD~5 is not in the repository"),
])
def test_a_bad_dist_folder_is_one_line_and_its_exit_code_before_any_run(project: Path, ran: list[dict[str, Any]], change: Any,
                                                                       argv: list[str], code: int, says: str,
                                                                       capsys: Capture) -> None:
    if change is not None:
        change(project)
    p = str(project)
    assert _main(*[a.replace("{p}", p) for a in argv], "--python", "3.12", "--project-dir", p) == code
    assert says.replace("{p}", p) in _one_error(capsys.readouterr().err)
    assert ran == []


def test_a_commit_other_than_the_manifests_is_refused(project: Path, ran: list[dict[str, Any]], capsys: Capture) -> None:
    (project / "README").write_text("x")
    git("add", "README", cwd=project)
    git("commit", "-q", "-m", "later", cwd=project)
    assert _main("test", "--dist", str(project / "dist"), "--commit", "HEAD", "--python", "3.12", "--project-dir", str(project)) == 3
    assert "was built from commit" in _one_error(capsys.readouterr().err) and ran == []


def test_help_says_the_results_never_count_for_promotion(capsys: Capture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["test", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--dist DIR" in out and "never count for promotion (the gate counts only records on the index)" in out


def test_pythons_are_found_in_pyenv_root_whatever_home_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI job may run with a HOME of its own (act's fresh runner does): pyenv's Pythons are
    still found through PYENV_ROOT, pyenv's own setting."""
    from ci_kit import envs

    exe = tmp_path / "pyenv" / "versions" / "3.99.1" / "bin" / "python3.99"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\necho 3.99\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    envs.find_python.cache_clear()
    try:
        assert envs.find_python("3.99") == str(exe)
    finally:
        envs.find_python.cache_clear()


def test_a_matrix_job_attaches_again_a_record_the_index_lost(project: Path, ran: list[dict[str, Any]]) -> None:
    """A CI matrix job (`--only-python`) attaches its records while the other jobs attach
    theirs; a record the index lost to that (devpi-postgresql's lost update) is attached
    again, so the release ends up with a record for every run of the job."""
    from ci_kit import config, push
    from ci_kit.release import Spec

    fake = losing_index()
    settings = config.load(project, {"python-versions": "3.12"}, environ={})
    push.push(fake, settings.index, Manifest.read(project / "dist"), project / "dist")
    fake.losses = 1  # the first test record attached vanishes
    report = teststage.run_tests(fake, settings.index, settings.test, project, Spec("churn-model", "1.0.0"),  # type: ignore[arg-type]
                                 only_python="3.12")
    rel = fake.release("ci/unstable", "churn-model", "1.0.0")
    assert rel is not None and fake.losses == 0
    tested = {r.out["filename"] for r in report.runs}
    with_records = {f.basename for f in rel.files if len(rel.results_for(f)) >= 2}  # its build record and its test record
    assert tested == with_records == {f.basename for f in rel.files}, (tested, with_records)
