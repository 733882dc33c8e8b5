"""Per-stage devpi-tokens tokens on a real devpi-server with the plugin (ci-kit server start).

The stages' rights: build-and-push = upload + toxresult_upload on unstable; test =
toxresult_upload on unstable; promote = upload + toxresult_upload on the targets.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from conftest import error_line, git, make_user, run_cikit


def _no_password(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in ("CI_KIT_PASSWORD", "CI_KIT_PASSWORD_FILE")}


def _broad_token(user) -> str:
    """A server-made token for everything the three stages need, as an admin would make once."""
    from ci_kit import tokens

    u = user.user
    return tokens.create(user.index(), allowed=["toxresult_upload", "upload"],
                         indexes=[f"{u}/unstable", f"{u}/testing", f"{u}/stable"], projects=None,
                         expires=int(time.time()) + 3600)


def _stage_token(env: dict[str, str], stage: str, cwd: Path, *extra: str) -> str:
    r = run_cikit("token", stage, "--expires", "2h", *extra, cwd=cwd, env=env)
    assert r.returncode == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("devpi-") and token not in r.stderr
    return token


def test_stage_rights_and_offline_derivation(fresh_user, tmp_path):
    """No server involved: the caveats say what each stage's token may do, narrowing only."""
    from ci_kit import config, tokens

    s = config.load(tmp_path, environ={"CI_KIT_USER": "team"})
    assert tokens.rights_for("build-and-push", s.index) == (["toxresult_upload", "upload"], ["team/unstable"])
    assert tokens.rights_for("test", s.index) == (["toxresult_upload"], ["team/unstable"])
    assert tokens.rights_for("promote", s.index) == (["toxresult_upload", "upload"], ["team/stable", "team/testing"])

    broad = _broad_token(fresh_user)
    u = fresh_user.user
    until = int(time.time()) + 600
    narrow = tokens.derive(broad, allowed=["toxresult_upload"], indexes=[f"{u}/unstable"], projects=["churn-model"], expires=until)
    info = tokens.inspect(narrow)
    assert (info.user, info.allowed, info.indexes, info.projects, info.expires) == (
        u, {"toxresult_upload"}, {f"{u}/unstable"}, {"churn-model"}, until)
    assert tokens.is_token(narrow) and tokens.is_token(narrow[len("devpi-"):])
    assert not tokens.is_token(fresh_user.password) and not tokens.is_token("devpi-test-Pa55word-7fq2")
    with pytest.raises(Exception, match="cannot grant upload on"):
        tokens.derive(narrow, allowed=["upload"], indexes=[f"{u}/unstable"], projects=None, expires=until)


def test_token_command_narrows_only_and_checks_its_input(fresh_user, devpi, product_repo):
    env, u = fresh_user.env, fresh_user.user
    port = devpi.url.rsplit(":", 1)[1]
    r = run_cikit("server", "status", env={**env, "CI_KIT_SERVER_DIR": str(devpi.server_dir), "CI_KIT_SERVER_PORT": port})
    assert "tokens: devpi-tokens 1." in r.stdout, r.output

    test_token = _stage_token(env, "test", product_repo)
    as_test = {**_no_password(env), "CI_KIT_PASSWORD": test_token}
    r = run_cikit("token", "promote", cwd=product_repo, env=as_test)
    assert r.returncode == 6 and r.stdout == ""
    assert f"cannot grant toxresult_upload on {u}/stable" in error_line(r) and "ci-kit: hint: a derived token" in r.stderr
    r = run_cikit("token", "test", "--expires", "soon", cwd=product_repo, env=as_test)
    assert r.returncode == 2 and "--expires 'soon' is not a duration or a date" in error_line(r)
    r = run_cikit("token", "test", "--expires", "400d", cwd=product_repo, env=env)  # the server's own limit
    assert r.returncode == 2 and "more than one year" in error_line(r)
    r = run_cikit("token", "test", cwd=product_repo, env=_no_password(env))
    assert r.returncode == 6 and "no credential" in error_line(r)
    r = run_cikit("token", cwd=product_repo, env=as_test)  # no stage: what the held token may do
    assert r.returncode == 0 and f"toxresult_upload on {u}/unstable" in r.stdout and test_token not in r.output


@pytest.mark.slow
def test_test_stage_token_cannot_upload_or_promote(fresh_user, product_repo):
    env, u = fresh_user.env, fresh_user.user
    test_token = _stage_token(env, "test", product_repo)
    as_test = {**_no_password(env), "CI_KIT_PASSWORD": test_token}

    r = run_cikit("build-and-push", cwd=product_repo, env=as_test)
    assert r.returncode == 6, r.output
    line = error_line(r)
    assert "403" in line and f"/{u}/unstable/" in line
    assert f"ci-kit: hint: the token held may only toxresult_upload on {u}/unstable" in r.stderr
    assert f"this needs upload on {u}/unstable" in r.stderr
    assert test_token not in r.output
    built = json.loads(run_cikit("build", "--json", cwd=product_repo, env=env).stdout)
    spec = f"{built['name']}=={built['version']}"
    assert fresh_user.index().release(f"{u}/unstable", "churn-model", built["version"]) is None

    # the release arrives by the password; the test token still cannot promote it, even forced
    r = run_cikit("push", cwd=product_repo, env=env)
    assert r.returncode == 0, r.output
    r = run_cikit("promote", spec, "--force", cwd=product_repo, env=as_test)
    assert r.returncode == 6, r.output
    assert "403" in error_line(r) and "ci-kit: hint: the token held may only toxresult_upload" in r.stderr
    assert fresh_user.index().release(f"{u}/testing", "churn-model", built["version"]) is None


def test_expired_token_is_refused_with_a_clear_message(fresh_user, product_repo):
    from ci_kit import tokens
    from ci_kit.errors import AuthError
    from ci_kit.index import Index

    u = fresh_user.user
    expired = tokens.derive(_broad_token(fresh_user), allowed=["toxresult_upload", "upload"], indexes=[f"{u}/unstable"],
                            projects=None, expires=int(time.time()) - 60)
    env = {**_no_password(fresh_user.env), "CI_KIT_PASSWORD": expired}
    r = run_cikit("promote", "churn-model==1.0", cwd=product_repo, env=env)
    assert r.returncode == 6, r.output
    assert " of user " + u + " EXPIRED at " in error_line(r)
    assert "ci-kit: hint: tokens cannot be extended: make one with `ci-kit token STAGE`" in r.stderr
    assert expired not in r.output
    r = run_cikit("config", cwd=product_repo, env=env)
    assert "EXPIRED at" in r.stdout and expired not in r.stdout

    # the server refuses it too (ci-kit's own check skipped): the same clear message
    idx = Index(fresh_user.url, u)
    idx.session.auth, idx.token = tokens.TokenAuth(u, expired), tokens.inspect(expired)
    with pytest.raises(AuthError, match=r"has expired \(Token expired at \d+"):
        idx.request("POST", f"{u}/unstable/", data={":action": "file_upload", "name": "churn-model"})


@pytest.mark.slow
def test_full_flow_with_three_restricted_tokens_and_no_password(fresh_user, product_repo, tmp_path):
    env, u = fresh_user.env, fresh_user.user
    broad = {**_no_password(env), "CI_KIT_PASSWORD": _broad_token(fresh_user)}
    upload_file = tmp_path / "upload.token"
    r = run_cikit("token", "build-and-push", "--expires", "1h", "--project", "churn-model",
                  "--token-file", str(upload_file), cwd=product_repo, env=broad)
    assert r.returncode == 0 and r.stdout == "", r.output
    assert stat.S_IMODE(upload_file.stat().st_mode) == 0o600
    test_token = _stage_token(broad, "test", product_repo)
    promote_token = _stage_token(broad, "promote", product_repo)
    nopw = _no_password(env)

    r = run_cikit("config", "--json", cwd=product_repo, env={**nopw, "CI_KIT_PASSWORD": test_token})
    cred = json.loads(r.stdout)["credentials"]
    assert cred["source"] == "environment CI_KIT_PASSWORD" and test_token not in r.stdout
    assert (cred["token"]["allowed"], cred["token"]["indexes"]) == (["toxresult_upload"], [f"{u}/unstable"])

    r = run_cikit("build-and-push", cwd=product_repo, env={**nopw, "CI_KIT_PASSWORD_FILE": str(upload_file)})
    assert r.returncode == 0, r.output
    spec = r.stdout.strip().splitlines()[-1]
    commit = git("rev-parse", "HEAD", cwd=product_repo)
    assert f"of user {u}: toxresult_upload, upload on {u}/unstable, projects churn-model" in r.stderr  # logged, not shown

    r = run_cikit("test", spec, "--commit", commit, cwd=product_repo, env={**nopw, "CI_KIT_PASSWORD": test_token})
    assert r.returncode == 0, r.output
    assert test_token not in r.output
    idx = fresh_user.index()
    rel = idx.release(f"{u}/unstable", "churn-model", spec.split("==")[1])
    assert rel.results and all(rel.results_for(f) for f in rel.files)

    r = run_cikit("promote", spec, cwd=product_repo, env={**nopw, "CI_KIT_PASSWORD": promote_token})
    assert r.returncode == 0, r.output
    assert promote_token not in r.output
    testing = idx.release(f"{u}/testing", "churn-model", spec.split("==")[1])
    assert {f.basename: f.sha256 for f in testing.files} == {f.basename: f.sha256 for f in rel.files}
    assert all(testing.results_for(f) for f in testing.files)  # the promotion records: toxresult_upload on the target


@pytest.fixture(scope="module")
def plain_devpi(tmp_path_factory):
    """A devpi-server without devpi-tokens (its own venv), as many servers still are."""
    import subprocess
    import sys

    import devpi_server

    from ci_kit.index import Index
    from conftest import Devpi, clean_env, free_port, require

    base = tmp_path_factory.mktemp("plain")
    uv = str(Path(sys.executable).with_name("uv"))
    made = subprocess.run(f"{uv} venv -q {base}/venv && {uv} pip install -q --python {base}/venv/bin/python "
                          f"devpi-server=={devpi_server.__version__}", shell=True, capture_output=True, text=True)
    require(made.returncode == 0, f"cannot make a venv with devpi-server alone: {made.stderr[-300:]}")
    assert subprocess.run([f"{base}/venv/bin/python", "-c", "import devpi_tokens"], capture_output=True).returncode != 0
    subprocess.run([f"{base}/venv/bin/devpi-init", "--serverdir", f"{base}/data", "--no-root-pypi"], check=True, capture_output=True)
    port = free_port()
    (base / "secret").write_text("plain-server-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
    (base / "secret").chmod(0o600)
    log = open(base / "server.log", "w")  # noqa: SIM115 - the server writes to it until the fixture stops it
    proc = subprocess.Popen([f"{base}/venv/bin/devpi-server", "--serverdir", f"{base}/data", "--host", "127.0.0.1",
                             "--port", str(port), "--secretfile", str(base / "secret")], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            assert proc.poll() is None, (base / "server.log").read_text()
            try:
                Index(url, timeout=2).request("GET", "+api")
                break
            except Exception:  # noqa: BLE001 - not up yet, whatever the error: try again until the deadline
                time.sleep(0.2)
        user, password = "plain", "plain-Pa55-word"
        make_user(url, user, password)
        env = {**clean_env(), "CI_KIT_USER": user, "CI_KIT_PASSWORD": password, "CI_KIT_INDEX_URL": url}
        yield Devpi(url, user, password, base, env)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_server_without_the_plugin_takes_passwords_and_says_so_for_tokens(plain_devpi, fresh_user, product_repo):
    env = plain_devpi.env
    r = run_cikit("build-and-push", cwd=product_repo, env=env)  # the password works as before
    assert r.returncode == 0, r.output

    r = run_cikit("token", "test", cwd=product_repo, env=env)
    assert r.returncode == 2 and "devpi-tokens is not installed there" in error_line(r), r.output

    from ci_kit import tokens

    # a well-formed token (made by the other server, for a user of the same name) that this server cannot read
    u = fresh_user.user
    foreign = tokens.derive(_broad_token(fresh_user), allowed=["upload", "toxresult_upload"], indexes=[f"{u}/unstable"],
                            projects=None, expires=int(time.time()) + 600)
    assert tokens.inspect(foreign).user == u
    git("commit", "-q", "--allow-empty", "-m", "a new version to upload", cwd=product_repo)
    r = run_cikit("build-and-push", "--user", u, "--unstable-index", "plain/unstable", cwd=product_repo,
                  env={**_no_password(env), "CI_KIT_PASSWORD": foreign})
    assert r.returncode == 6, r.output
    error_line(r)
    assert "has no devpi-tokens, so it takes passwords only" in r.stderr and foreign not in r.output
