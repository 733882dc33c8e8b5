"""config.load: four layers, one line per bad value, secrets from the environment given."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ci_kit import config
from ci_kit.errors import UsageError

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _pyproject(tmp_path: Path, body: str) -> Path:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[tool.ci-kit]\n{body}\n')
    return tmp_path


def _described(s: config.Settings) -> dict[str, tuple[object, str]]:
    return {k: (v["value"], v["source"]) for k, v in s.describe().items()}


def test_defaults_without_any_configuration(tmp_path: Path) -> None:
    d = _described(config.load(tmp_path, environ={}))
    assert d["index-url"] == ("http://127.0.0.1:3141", "default")
    assert d["unstable-index"] == ("ci/unstable", "default")
    assert d["testing-index"] == ("ci/testing", "default") and d["stable-index"] == ("ci/stable", "default")
    assert d["python-versions"] == ([HERE], "default")
    assert d["test-command"] == ("pytest", "default") and d["require-junit"] == (True, "default")
    assert set(d) == {k.name for k in config.KEYS}


def test_later_layers_win_and_say_where_a_value_came_from(tmp_path: Path) -> None:
    _pyproject(tmp_path, 'user = "from-toml"\ntest-extras = ["test"]\nserver-port = 4000\nimage = true')
    s = config.load(tmp_path, {"user": "from-flag"}, environ={"CI_KIT_USER": "from-env", "CI_KIT_TEST_EXTRAS": "a, b"})
    d = _described(s)
    assert d["user"] == ("from-flag", "flag --user")
    assert d["test-extras"] == (["a", "b"], "environment CI_KIT_TEST_EXTRAS")
    assert d["server-port"] == (4000, "pyproject.toml") and d["image"] == (True, "pyproject.toml")
    assert d["unstable-index"] == ("from-flag/unstable", "default")  # follows the user
    assert d["index-url"] == ("http://127.0.0.1:4000", "pyproject.toml (server-port)")


@pytest.mark.parametrize("text, value", [('["a", "b"]', ["a", "b"]), ("a,b", ["a", "b"]), (" a , ,b ", ["a", "b"]), ("[]", [])])
def test_lists_from_the_environment_as_json_or_words(tmp_path: Path, text: str, value: list[str]) -> None:
    assert config.load(tmp_path, environ={"CI_KIT_TRUSTED_UPLOADERS": text}).index.trusted_uploaders == tuple(value)


@pytest.mark.parametrize("text, value", [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False), ("false", False)])
def test_booleans_from_the_environment(tmp_path: Path, text: str, value: bool) -> None:
    assert config.load(tmp_path, environ={"CI_KIT_REQUIRE_JUNIT": text}).test.require_junit is value


def test_empty_variables_mean_not_set_and_urls_lose_a_trailing_slash(tmp_path: Path) -> None:
    s = config.load(tmp_path, environ={"CI_KIT_USER": "", "CI_KIT_INDEX_URL": "https://devpi.example:8443/"})
    assert s.index.user == "ci" and s.index.index_url == "https://devpi.example:8443"


def test_an_explicit_index_url_is_kept_when_the_server_port_is_set(tmp_path: Path) -> None:
    s = config.load(tmp_path, environ={"CI_KIT_SERVER_PORT": "4001", "CI_KIT_INDEX_URL": "http://10.0.0.1:3141"})
    assert s.index.index_url == "http://10.0.0.1:3141" and s.server.server_port == 4001


BAD_ENV = [
    ("CI_KIT_PYTHON_VERSIONS", "3", "`python-versions` must be a non-empty list of MAJOR.MINOR versions such as 3.11 (got 3)"),
    ("CI_KIT_PYTHON_VERSIONS", "3.11,3.11", "a list without repeats (3.11 given more than once)"),
    ("CI_KIT_SERVER_PORT", "70000", "`server-port` must be a port number between 1 and 65535, got 70000"),
    ("CI_KIT_SERVER_PORT", "port", "`server-port` must be an integer, got 'port'"),
    ("CI_KIT_INDEX_TIMEOUT", "0", "a number of seconds between 1 and 3600"),
    ("CI_KIT_REQUIRE_JUNIT", "maybe", "`require-junit` must be true or false, got 'maybe'"),
    ("CI_KIT_PROMOTE_TO", "prod", "one of auto, stable, testing"),
    ("CI_KIT_METADATA_CHECK", "loud", "one of warn, strict, off"),
    ("CI_KIT_INDEX_URL", "devpi.example", "a URL starting with http:// or https://"),
    ("CI_KIT_INDEX_URL", "http://devpi.example/ci/stable", "the server's root URL, without a path"),
    ("CI_KIT_INDEX_URL", "http://h:0", "a URL with a port between 1 and 65535"),
    ("CI_KIT_INDEX_URL", "http://h:99999", "a valid URL (Port out of range"),
    ("CI_KIT_DEPENDENCY_INDEX_URL", "ftp://mirror", "a URL starting with http:// or https://"),
    ("CI_KIT_STABLE_INDEX", "stable", "devpi's USER/INDEX form, e.g. ci/stable"),
    ("CI_KIT_TEST_COMMAND", "pytest 'unclosed", "a command in shell words (No closing quotation)"),
    ("CI_KIT_TEST_COMMAND", "  ", "a command, e.g. pytest (it is empty)"),
    ("CI_KIT_PASS_ENV", "CI_KIT_PASSWORD", "never CI_KIT_* (got 'CI_KIT_PASSWORD')"),
    ("CI_KIT_TEST_EXTRAS", "[1, 2]", "`test-extras` must be a list of strings"),
    ("CI_KIT_TEST_EXTRAS", "[oops", "a JSON list or comma-separated words"),
    ("CI_KIT_STABEL_INDEX", "ci/stable", "environment: unknown variable CI_KIT_STABEL_INDEX"),
    ("CI_KIT_SANDBOX", "off", "CI_KIT_SANDBOX must be one of auto, user, namespace, none, got 'off'"),
    ("CI_KIT_TESTING_INDEX", "ci/unstable", "testing-index and unstable-index are both ci/unstable"),
]


@pytest.mark.parametrize("var, value, says", BAD_ENV, ids=[f"{v}={x}" for v, x, _ in BAD_ENV])
def test_each_bad_environment_value_is_one_line_naming_it(tmp_path: Path, var: str, value: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        config.load(tmp_path, environ={var: value})
    err = info.value
    assert says in err.message and "\n" not in err.message and err.hint and err.exit_code == 2
    if var not in ("CI_KIT_SANDBOX", "CI_KIT_TESTING_INDEX", "CI_KIT_STABEL_INDEX"):
        assert err.message.startswith(f"environment {var}: ")


BAD_TOML = [
    ('python-versions = "3.11"', "`python-versions` must be a list of strings, got '3.11'"),
    ("server-port = true", "`server-port` must be an integer, got True"),
    ('server-port = "3141"', "`server-port` must be an integer, got '3141'"),  # TOML has types: no coercion
    ('require-junit = "false"', "`require-junit` must be true or false"),
    ("test-extras = [1]", "`test-extras` must be a list of strings"),
    ('stabel-index = "ci/stable"', "[tool.ci-kit]: unknown key `stabel-index`"),
]


@pytest.mark.parametrize("body, says", BAD_TOML, ids=[b.split(" ")[0] for b, _ in BAD_TOML])
def test_each_bad_pyproject_value_is_one_line_naming_the_file(tmp_path: Path, body: str, says: str) -> None:
    _pyproject(tmp_path, body)
    with pytest.raises(UsageError) as info:
        config.load(tmp_path, environ={})
    assert says in info.value.message and str(tmp_path / "pyproject.toml") in info.value.message
    assert "\n" not in info.value.message


def test_broken_toml_and_a_non_table_are_named(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ci-kit\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        config.load(tmp_path, environ={})
    (tmp_path / "pyproject.toml").write_text('[tool]\nci-kit = "x"\n')
    with pytest.raises(UsageError, match=r"\[tool.ci-kit\] must be a table"):
        config.load(tmp_path, environ={})


def test_a_bad_flag_is_named_as_a_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^flag --server-port: `server-port` must be an integer, got 'x'$"):
        config.load(tmp_path, {"server-port": "x"}, environ={})


def test_credentials_in_a_url_are_refused_and_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        config.load(tmp_path, environ={"CI_KIT_INDEX_URL": "http://ci:Hunter2-Secret@devpi:3141"})
    assert "Hunter2-Secret" not in info.value.message and "http://****@devpi:3141" in info.value.message


def test_secrets_come_from_the_given_environment_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_KIT_PASSWORD", "from-os-environ")
    s = config.load(tmp_path, environ={"CI_KIT_PASSWORD": "given-password", "CI_KIT_REGISTRY_PASSWORD": "registry-secret"})
    assert s.index.password == "given-password" and s.image.registry_password == "registry-secret"
    assert config.load(tmp_path, environ={}).index.password is None
    assert "given-password" not in repr(s)


def test_a_password_file_is_read_on_demand_and_problems_are_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("file-password-1\n")
    s = config.load(tmp_path, {"password-file": str(secret)}, environ={})
    assert s.index.password == "file-password-1" and s.password_files == [str(secret)]
    secret.unlink()
    with pytest.raises(UsageError, match=f"cannot read the password file {secret}: No such file"):
        _ = s.index.password
    registry = tmp_path / "reg"
    registry.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        _ = config.load(tmp_path, environ={"CI_KIT_REGISTRY_PASSWORD_FILE": str(registry)}).image.registry_password


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="shorter than 8 characters"):
        _ = config.load(tmp_path, environ={"CI_KIT_PASSWORD": "dev1"}).index.password


def test_trusted_is_the_user_and_the_trusted_uploaders(tmp_path: Path) -> None:
    s = config.load(tmp_path, environ={"CI_KIT_USER": "bot", "CI_KIT_TRUSTED_UPLOADERS": "alice,bob"})
    assert s.index.trusted == frozenset({"bot", "alice", "bob"})


def test_the_markdown_table_has_one_row_per_key_with_its_variable_and_default() -> None:
    lines = config.markdown_table().splitlines()
    assert lines[0].startswith("| key (`[tool.ci-kit]`) | environment |") and len(lines) == 2 + len(config.KEYS)
    rows = {line.split(" | ")[0][3:-1]: line for line in lines[2:]}
    assert list(rows) == [k.name for k in config.KEYS]
    assert "| `CI_KIT_PYTHON_VERSIONS` | list | `current Python` |" in rows["python-versions"]
    assert "| `CI_KIT_TOX_ENV` | str | `—` |" in rows["tox-env"]
    assert "| bool | `true` |" in rows["require-junit"] and "| list | `[]` |" in rows["test-extras"]
    assert "| int | `3141` |" in rows["server-port"]
