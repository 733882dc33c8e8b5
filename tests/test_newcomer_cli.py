"""What a newcomer meets first: short help per verb, settings that follow each other,
and hints that lead somewhere."""

from __future__ import annotations

import json

from conftest import clean_env, error_line, run_cikit


def test_verb_help_is_short_and_shows_the_verb_s_own_options():
    r = run_cikit("promote", "--help")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert len(lines) < 45, r.stdout
    assert "--dry-run" in r.stdout and "--force" in r.stdout
    assert "--image-entrypoint" not in r.stdout  # every key is a flag, listed once by config --table
    assert "ci-kit config --table" in r.stdout


def test_every_key_is_still_a_flag(tmp_path):
    r = run_cikit("config", "--json", "--test-extras", "test", "--project-dir", str(tmp_path), env=clean_env())
    assert r.returncode == 0, r.output
    assert json.loads(r.stdout)["test-extras"] == {"value": ["test"], "source": "flag --test-extras"}


def test_server_port_implies_the_index_url_unless_set(tmp_path):
    env = {**clean_env(), "CI_KIT_SERVER_PORT": "3999"}
    data = json.loads(run_cikit("config", "--json", "--project-dir", str(tmp_path), env=env).stdout)
    assert data["index-url"]["value"] == "http://127.0.0.1:3999"
    env["CI_KIT_INDEX_URL"] = "https://devpi.example.org"
    data = json.loads(run_cikit("config", "--json", "--project-dir", str(tmp_path), env=env).stdout)
    assert data["index-url"]["value"] == "https://devpi.example.org"


def test_the_scripts_own_variables_are_accepted(tmp_path):
    env = {**clean_env(), "CI_KIT_DEMO_VENV": "/x", "CI_KIT_TEST_VENV": "/y", "CI_KIT_BENCH_VENV": "/z"}
    r = run_cikit("config", "--project-dir", str(tmp_path), env=env)
    assert r.returncode == 0, r.output


def test_server_start_with_another_password_says_where_the_kept_one_is(devpi, tmp_path):
    """The tour's trap: `server start` without a password keeps one in a file; a later
    start with another CI_KIT_PASSWORD must say where that file is."""
    port = devpi.url.rsplit(":", 1)[1]
    env = {**clean_env(), "CI_KIT_SERVER_DIR": str(devpi.server_dir), "CI_KIT_SERVER_PORT": port,
           "CI_KIT_USER": "newcomer"}
    r = run_cikit("server", "start", env=env)
    assert r.returncode == 0, r.output
    kept = devpi.server_dir / "newcomer.password"
    assert kept.is_file()
    r = run_cikit("server", "start", env={**env, "CI_KIT_PASSWORD": "another-password-123"})
    assert r.returncode == 6, r.output
    assert "already exists" in error_line(r) and f"export CI_KIT_PASSWORD_FILE={kept}" in r.stderr
