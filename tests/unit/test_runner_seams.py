"""Stages with a stand-in runner (fakes.FakeRun): what build and envs ask their children
to do and how they read a child's answer, without starting a backend or uv. Test planning
(which file on which Python) is pure and needs no runner at all."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ci_kit import build, envs
from ci_kit import testrun as teststage
from ci_kit.errors import BuildError, EnvFailed, ProjectError
from ci_kit.listing import Release, ReleaseFile

from .fakes import COMMIT_TIME, FakeRun, committed_product, dist_files

# -- planning ------------------------------------------------------------------------------------

def _release(*names: str) -> Release:
    return Release("ci/unstable", "x", "1.0", [ReleaseFile(n, f"http://i/{n}", "a" * 64) for n in names])


@pytest.mark.parametrize("files, pythons, plan", [
    (["x-1.0-py3-none-any.whl", "x-1.0.tar.gz"], ["3.11", "3.12"],
     [("x-1.0-py3-none-any.whl", "3.11"), ("x-1.0-py3-none-any.whl", "3.12"), ("x-1.0.tar.gz", "3.11")]),
    (["x-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "x-1.0.tar.gz"], ["3.11", "3.12"],
     [("x-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", "3.12"), ("x-1.0.tar.gz", "3.11")]),
    (["x-1.0-cp310-abi3-manylinux_2_17_x86_64.whl", "x-1.0.tar.gz"], ["3.9", "3.12"],
     [("x-1.0-cp310-abi3-manylinux_2_17_x86_64.whl", "3.12"), ("x-1.0.tar.gz", "3.9")]),
    (["x-1.0.tar.gz"], ["3.11", "3.12"], [("x-1.0.tar.gz", "3.11"), ("x-1.0.tar.gz", "3.12")]),
    (["x-1.0-cp313-cp313-win_amd64.whl"], ["3.12"], []),
])
def test_every_file_is_tested_where_it_serves_and_the_sdist_at_least_once(files: list[str], pythons: list[str],
                                                                           plan: list[tuple[str, str]]) -> None:
    assert [(f.basename, py) for f, py in teststage._plan(_release(*files).files, pythons)] == plan


# -- build ---------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CI_KIT_SANDBOX", "none")  # no namespaces to probe: nothing runs the product here
    return committed_product(tmp_path / "product")


def _backend(files: dict[str, bytes]) -> Any:
    """A build backend's answer: writes its kind's file into --outdir."""

    def answer(argv: list[str], cwd: Any) -> tuple[int, str]:
        out = Path(argv[argv.index("--outdir") + 1])
        out.mkdir(exist_ok=True)
        kind = ".whl" if "--wheel" in argv else ".tar.gz"
        for name, data in files.items():
            if name.endswith(kind):
                (out / name).write_bytes(data)
        return 0, "Successfully built"

    return answer


def test_build_runs_both_backends_from_fresh_clones_at_the_commits_time(project: Path, make_settings: Any) -> None:
    from ci_kit import config

    run = FakeRun(_backend(dist_files("churn-model", "1.0.0")))
    m = build.build(project, config.load(project, {"metadata-check": "off"}, environ={}).build, run=run)
    assert (m.name, m.version, len(m.commit)) == ("churn-model", "1.0.0", 40)
    assert sorted(c["argv"][c["argv"].index("build") + 1] for c in run.calls) == ["--sdist", "--wheel"]
    for call in run.calls:
        assert call["env"]["SOURCE_DATE_EPOCH"] == str(COMMIT_TIME)
        assert Path(call["cwd"]) != project and Path(call["argv"][-1]) == Path(call["cwd"])  # a clone, not the work tree
        assert "CI_KIT_PASSWORD" not in call["env"]
    assert [f.filename for f in m.files] == sorted(dist_files("churn-model", "1.0.0"))
    assert build.Manifest.read(project / "dist") == m
    with tarfile.open(project / "dist" / "churn_model-1.0.0.tar.gz") as tf:  # normalised for reproducibility
        assert {member.mtime for member in tf.getmembers()} == {COMMIT_TIME}


def test_a_failing_backend_is_one_line_with_its_own_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ci_kit import config

    output = ("* Building wheel...\nTraceback (most recent call last):\n  File \"hooks.py\", line 1, in <module>\n"
              "setuptools.errors.InvalidConfigError: License classifiers have been superseded\n"
              "ERROR Backend subprocess exited when trying to invoke build_wheel\n")
    with pytest.raises(BuildError) as info:
        build.build(project, config.load(project, {"metadata-check": "off"}, environ={}).build, run=FakeRun(lambda _argv, _cwd: (1, output)))
    assert info.value.message == ("the build backend failed: "
                                  "setuptools.errors.InvalidConfigError: License classifiers have been superseded")
    assert info.value.exit_code == 4
    err = capsys.readouterr().err
    assert "License classifiers" in err and 'File "hooks.py"' not in err  # the backend's words, not pyproject_hooks' frames


def test_a_build_of_nothing_or_of_two_releases_is_refused(project: Path) -> None:
    from ci_kit import config

    settings = config.load(project, {"metadata-check": "off"}, environ={}).build
    with pytest.raises(BuildError, match="the build produced no sdist or wheel"):
        build.build(project, settings, run=FakeRun())
    two = {**dist_files("churn-model", "1.0.0"), "churn_model-1.0.1-py3-none-any.whl": b"x"}
    two.pop("churn_model-1.0.0-py3-none-any.whl")
    with pytest.raises(BuildError, match="the build produced files of more than one release"):
        build.build(project, settings, run=FakeRun(_backend(two)))


def test_a_dirty_tree_is_refused_before_any_build(project: Path) -> None:
    from ci_kit import config

    (project / "pyproject.toml").write_text("# changed\n")
    run = FakeRun()
    with pytest.raises(ProjectError, match=r"uncommitted changes \(pyproject.toml\)"):
        build.build(project, config.load(project, environ={}).build, run=run)
    assert run.calls == []


def test_reproducible_sdist_keeps_contents_and_order(tmp_path: Path) -> None:
    path = tmp_path / "x-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name in ("x-1.0/b.py", "x-1.0/a.py"):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.uid, info.uname = 3, 1_900_000_000, 1000, "me"
            tf.addfile(info, io.BytesIO(b"abc"))
    build.reproducible_sdist(path, 315532800)
    first = path.read_bytes()
    with tarfile.open(path) as tf:
        assert [(m.name, m.mtime, m.uid, m.uname) for m in tf.getmembers()] == [
            ("x-1.0/b.py", 315532800, 0, ""), ("x-1.0/a.py", 315532800, 0, "")]
    build.reproducible_sdist(path, 315532800)
    assert path.read_bytes() == first


# -- envs ----------------------------------------------------------------------------------------

def test_install_asks_uv_for_the_dependency_index_and_reports_its_last_words(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_KIT_SANDBOX", "none")
    env = envs.Env(tmp_path, tmp_path / "bin" / "python", "3.12")
    run = FakeRun()
    envs.install(env, ["/f/x-1.0-py3-none-any.whl", "pytest"], index_url="http://mirror/simple", run=run)
    argv = run.calls[0]["argv"]
    assert argv[1:5] == ["pip", "install", "--python", str(env.python)]
    assert argv[-4:] == ["/f/x-1.0-py3-none-any.whl", "pytest", "--index-url", "http://mirror/simple"]
    assert run.calls[0]["env"]["UV_PYTHON_DOWNLOADS"] == "never"
    uv_says = "Resolved 3 packages\n  × No solution found when resolving dependencies:\n  ╰─▶ Because nothing==9 was not found\n"
    with pytest.raises(EnvFailed) as info:
        envs.install(env, ["x"], run=FakeRun(lambda _argv, _cwd: (1, uv_says)))
    assert info.value.message == ("installing into the Python 3.12 environment failed: Resolved 3 packages / "
                                  "× No solution found when resolving dependencies: / ╰─▶ Because nothing==9 was not found")
    assert info.value.exit_code == 12
    assert envs.dependency_index_args("") == []  # unset: uv's own configuration decides


def test_create_reports_uvs_words(tmp_path: Path) -> None:
    import sys

    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    run = FakeRun(lambda _argv, _cwd: (2, "error: interpreter broken\n"))
    with pytest.raises(EnvFailed, match=f"cannot create a Python {here} environment: error: interpreter broken"):
        envs.create(tmp_path / "venv", here, run=run)
    assert run.calls[0]["argv"][1:5] == ["venv", "--quiet", "--python", sys.executable]
