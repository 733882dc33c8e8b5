"""The command line in-process (`cli.main([...])`): help texts, --version, usage errors
before any index contact, the error model, and the shapes of --json, --output and
--summary, with FakeIndex where a verb needs an index."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from ci_kit import __version__, cli, config, results
from ci_kit.build import MANIFEST, Manifest
from ci_kit.errors import EXIT_CODES, CiKitError
from ci_kit.index import Index

from .conftest import COMMIT
from .fakes import FakeIndex, write_built

Capture = pytest.CaptureFixture[str]


def _one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("ci-kit: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_help_lists_the_verbs_and_every_exit_code(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for verb in ("build-and-push", "test-and-promote", "promote", "status", "server", "config", "token", "image"):
        assert f"    {verb}" in out
    for code, text in EXIT_CODES.items():
        assert f"  {code:>2}  {text}" in out


def test_version(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"ci-kit {__version__}\n"


def test_no_verb_prints_help_and_exits_2(capsys: Capture) -> None:
    assert cli.main([]) == 2
    assert capsys.readouterr().out.startswith("usage: ci-kit")


def test_a_verbs_help_shows_its_own_options_not_every_key(capsys: Capture) -> None:
    with pytest.raises(SystemExit):
        cli.main(["promote", "--help"])
    out = capsys.readouterr().out
    assert "--dry-run" in out and "--force" in out and "NAME==VERSION" in out
    assert "--stable-index" not in out and "--image-base" not in out  # keys are flags, listed once elsewhere
    assert "`ci-kit config --table` lists them all" in out


@pytest.mark.parametrize("argv, says", [
    (["promote", "churn-model"], "'churn-model' is not NAME==VERSION"),
    (["test-and-promote", "churn model==1"], "malformed requirement 'churn model==1'"),
    (["promote", "x==1", "--bogus"], "unrecognized arguments: --bogus"),
    (["promote"], "the following arguments are required: NAME==VERSION"),
    (["status", "--limit", "0"], "--limit must be 1 or more, got 0"),
    (["server", "reboot"], "argument action: invalid choice: 'reboot'"),
    (["promote", "x==1", "--server-port", "http"], "flag --server-port: `server-port` must be an integer, got 'http'"),
    (["promote", "x==1", "--index-url", "http://u:Pw-in-url-99@h"], "`index-url` must be a URL without user:password@"),
])
def test_usage_errors_exit_2_in_one_line_before_any_index_contact(argv: list[str], says: str, tmp_path: Path,
                                                                 capsys: Capture) -> None:
    try:
        code = cli.main([*argv, "--project-dir", str(tmp_path)])
    except SystemExit as exc:  # argparse's own errors leave through sys.exit(2)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and says in _one_error(err), err
    assert "ci-kit: hint: " in err and "Pw-in-url-99" not in err  # the autouse guard fails any index request


def test_a_bad_environment_value_is_named(tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_KIT_PROMOTE_TO", "prod")
    assert cli.main(["promote", "x==1", "--project-dir", str(tmp_path)]) == 2
    assert "environment CI_KIT_PROMOTE_TO: `promote-to` must be one of auto, stable, testing" in _one_error(capsys.readouterr().err)


@pytest.mark.parametrize("exc, code, says", [
    (CiKitError("the server said Leaky-Secret-7", "retry"), 1, "ci-kit: error: the server said ****"),
    (ValueError("odd"), 1, "ci-kit: error: internal error: ValueError: odd"),
    (OSError(errno.ENOSPC, "No space left on device", "/tmp/x"), 2, "ci-kit: error: cannot write /tmp/x"),
    (KeyboardInterrupt(), 130, "ci-kit: error: interrupted"),
])
def test_every_failure_is_one_line_and_its_exit_code(exc: BaseException, code: int, says: str, capsys: Capture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_kit import console

    console.add_secret("Leaky-Secret-7")

    def boom(args: Any) -> int:
        raise exc

    monkeypatch.setattr(cli, "cmd_config", boom)
    assert cli.main(["config"]) == code
    err = capsys.readouterr().err
    assert _one_error(err).startswith(says) and "Leaky-Secret-7" not in err


def test_debug_shows_the_traceback_of_a_bug_masked(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_kit import console

    console.add_secret("Leaky-Secret-8")

    def boom(args: Any) -> int:
        raise RuntimeError("Leaky-Secret-8 in a bug")

    monkeypatch.setattr(cli, "cmd_config", boom)
    assert cli.main(["config", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "Leaky-Secret-8" not in err


def test_config_table_is_the_generated_one(capsys: Capture) -> None:
    assert cli.main(["config", "--table"]) == 0
    assert capsys.readouterr().out == config.markdown_table() + "\n"


def test_config_json_has_every_key_with_its_source_and_never_a_secret(tmp_path: Path, capsys: Capture,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_KIT_PASSWORD", "Config-Secret-55")
    monkeypatch.setenv("CI_KIT_USER", "bot")
    assert cli.main(["config", "--json", "--project-dir", str(tmp_path), "--test-command", "pytest -x"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert set(data) == {k.name for k in config.KEYS} | {"credentials"}
    assert data["user"] == {"value": "bot", "source": "environment CI_KIT_USER"}
    assert data["test-command"] == {"value": "pytest -x", "source": "flag --test-command"}
    assert data["credentials"] == {"value": "password of devpi user bot (all of the user's rights)",
                                   "source": "environment CI_KIT_PASSWORD"}
    assert "Config-Secret-55" not in out


@pytest.fixture
def fake_from_settings(fake: FakeIndex, monkeypatch: pytest.MonkeyPatch) -> FakeIndex:
    """Every verb's Index.from_settings gives the fake (the password is checked as it would be)."""

    def from_settings(cls: type, settings: Any, login: bool | str = True) -> FakeIndex:
        if login is True and not settings.password:
            from ci_kit.errors import AuthError

            raise AuthError(f"no password for devpi user {settings.user!r}", "set CI_KIT_PASSWORD")
        return fake

    monkeypatch.setattr(Index, "from_settings", classmethod(from_settings))
    monkeypatch.setenv("CI_KIT_PASSWORD", "Unit-Password-1")
    return fake


def _built(project: Path) -> Manifest:
    return write_built(project, COMMIT)


def test_push_prints_commit_and_requirement_for_shell_capture(fake_from_settings: FakeIndex, tmp_path: Path,
                                                              capsys: Capture) -> None:
    _built(tmp_path)
    assert cli.main(["push", "--project-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"commit {COMMIT}\nchurn-model==1.0.0\n"
    assert "push: churn-model==1.0.0 on ci/unstable: 2 uploaded" in captured.err


def test_push_json_output_file_and_summary(fake_from_settings: FakeIndex, tmp_path: Path, capsys: Capture) -> None:
    m = _built(tmp_path)
    output, summary = tmp_path / "out.env", tmp_path / "summary.md"
    assert cli.main(["push", "-q", "--json", "--output", str(output), "--summary", str(summary), "--project-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err == ""  # -q: no progress
    assert set(data) == {"name", "version", "requirement", "commit", "index", "files"}
    assert [set(f) for f in data["files"]] == [{"filename", "sha256", "url"}] * 2
    assert {f["sha256"] for f in data["files"]} == {f.sha256 for f in m.files}
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert lines["requirement"] == "churn-model==1.0.0" and json.loads(lines["files"]) == data["files"]
    assert summary.read_text().startswith("### ci-kit: `churn-model==1.0.0` on `ci/unstable`")


def _tested(fake: FakeIndex) -> None:
    rel = fake.release("ci/unstable", "churn-model", "1.0.0")
    assert rel is not None
    for f in rel.files:
        fake.attach_result(f, results.test_record(
            filename=f.basename, sha256=f.sha256, commit=COMMIT, python="3.12", python_full="3.12.1", executable="python",
            command=["pytest"], retcode=0, output="", counts={"tests": 2}, counted=True, junit="", metrics={}, proof={},
            duration=0.1))


def test_promote_json_output_and_summary(fake_from_settings: FakeIndex, tmp_path: Path, capsys: Capture) -> None:
    _built(tmp_path)
    assert cli.main(["push", "-q", "--project-dir", str(tmp_path)]) == 0
    _tested(fake_from_settings)
    capsys.readouterr()
    output, summary = tmp_path / "out.env", tmp_path / "summary.md"
    argv = ["promote", "churn-model==1.0.0", "--python", "3.12", "--project-dir", str(tmp_path)]
    assert cli.main([*argv, "--json", "--output", str(output), "--summary", str(summary)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"requirement", "name", "version", "promoted_to", "changed", "forced", "dry_run", "already", "files", "gate"}
    assert (data["promoted_to"], data["changed"], data["forced"]) == ("ci/stable", True, False)
    assert output.read_text() == "requirement=churn-model==1.0.0\npromoted_to=ci/stable\nchanged=true\nforced=false\n"
    assert summary.read_text().startswith("### ci-kit promote: `churn-model==1.0.0` promoted to `ci/stable`\n\n- churn_model")
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == "churn-model==1.0.0 already on ci/stable\n"


def test_a_refused_promotion_exits_10_in_one_line(fake_from_settings: FakeIndex, tmp_path: Path, capsys: Capture) -> None:
    _built(tmp_path)
    assert cli.main(["push", "-q", "--project-dir", str(tmp_path)]) == 0
    assert cli.main(["promote", "churn-model==1.0.0", "--python", "3.12", "--project-dir", str(tmp_path)]) == 10
    err = capsys.readouterr().err
    assert "cannot be promoted: churn_model-1.0.0-py3-none-any.whl (sha256 " in _one_error(err)
    assert fake_from_settings.release("ci/stable", "churn-model", "1.0.0") is None


def test_a_write_without_a_password_is_exit_6(fake_from_settings: FakeIndex, tmp_path: Path, capsys: Capture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _built(tmp_path)
    monkeypatch.delenv("CI_KIT_PASSWORD")
    assert cli.main(["push", "--project-dir", str(tmp_path)]) == 6
    assert "no password for devpi user 'ci'" in _one_error(capsys.readouterr().err)
    assert fake_from_settings.writes == []


def test_status_json_and_table(fake_from_settings: FakeIndex, tmp_path: Path, capsys: Capture) -> None:
    _built(tmp_path)
    assert cli.main(["push", "-q", "--project-dir", str(tmp_path)]) == 0
    _tested(fake_from_settings)
    capsys.readouterr()
    assert cli.main(["status", "churn-model", "--json", "--project-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "churn-model" and data["shown"] == data["total_versions"] == 1
    row = data["versions"][0]
    assert row["version"] == "1.0.0" and set(row["indexes"]) == {"unstable"}
    assert row["tests"] == {"py3.12": "passed", "py3.12 (sdist)": "passed"} and row["promoted"] == []
    assert cli.main(["status", "--project-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["project      unstable  testing  stable", "churn-model  1.0.0     —        —"]
    assert cli.main(["status", "nothing-here", "--project-dir", str(tmp_path)]) == 7


def test_report_html_makes_its_missing_folders(fake_from_settings: FakeIndex, tmp_path: Path, capsys: Capture) -> None:
    _built(tmp_path)
    assert cli.main(["push", "-q", "--project-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    page = tmp_path / "not" / "yet" / "report.html"
    assert cli.main(["report", "churn-model", "--html", str(page), "--project-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{page}\n"
    assert page.read_text().startswith("<!doctype html>") and "1.0.0" in page.read_text()
    under_a_file = tmp_path / "dist" / MANIFEST / "report.html"  # a folder cannot be made inside a file
    assert cli.main(["report", "churn-model", "--html", str(under_a_file), "--project-dir", str(tmp_path)]) == 2
    assert f"--html {under_a_file}: {tmp_path / 'dist' / MANIFEST} is a file, not a folder" in _one_error(capsys.readouterr().err)
