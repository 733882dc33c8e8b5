"""Least privilege for the product's code (issue 11): a product whose test tries every way
we know to steal ci-kit's devpi password finds nothing, and the password appears nowhere
ci-kit prints, writes or uploads. The password is a random sentinel, so any hit is a leak.

Whole flows run from the CLI on a real devpi-server, in a real git repository.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import EXAMPLE, error_line, git, make_repo, make_user, run_cikit

# The product's stealing test. {loot} is a world-writable folder outside every sandbox;
# {guess} a path the attacker knows (the password file), to try it directly.
STEAL = r'''
import json, os, pwd, re

HINTS = ("PASSWORD", "TOKEN", "SECRET", "KEY")


def _read(path):
    try:
        if os.path.isdir(path):
            return {n: _read(os.path.join(path, n)) for n in sorted(os.listdir(path))[:50]}
        with open(path, "rb") as fh:
            return fh.read(2_000_000).decode("utf-8", "replace")
    except OSError as exc:
        return "<%s>" % type(exc).__name__


def _ancestors():
    pid, chain = os.getpid(), []
    while pid > 1:
        try:
            ppid = int(re.search(r"PPid:\s+(\d+)", open("/proc/%d/status" % pid).read()).group(1))
        except (OSError, AttributeError):
            break
        chain.append(ppid)
        pid = ppid
    return chain


def steal(where):
    found = {"environ": dict(os.environ), "ancestors": _ancestors(), "proc": {}, "files": {}}
    pids = sorted({*found["ancestors"], *(int(p) for p in os.listdir("/proc") if p.isdigit())})
    for pid in pids:
        found["proc"][pid] = {"environ": _read("/proc/%d/environ" % pid), "cmdline": _read("/proc/%d/cmdline" % pid)}
        # every file an ancestor or neighbour names on its command line (--password-file X)
        for arg in found["proc"][pid]["cmdline"].split("\0"):
            if arg.startswith("/") and os.path.isfile(arg) and os.path.getsize(arg) < 4096:
                found["files"][arg] = _read(arg)
    for name, value in os.environ.items():
        if any(h in name.upper() for h in HINTS):
            found["files"][value] = _read(value)
    homes = {os.path.expanduser("~"), "/root"}
    try:
        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    homes.update({GUESS_HOME})
    for home in homes:
        for name in (".netrc", ".pypirc", ".devpi", ".config/devpi", ".ci-kit"):
            found["files"][os.path.join(home, name)] = _read(os.path.join(home, name))
    found["files"][GUESS] = _read(GUESS)
    text = json.dumps(found, sort_keys=True, default=str)
    print(text)
    with open(os.path.join(LOOT, "loot-%s-%s.json" % (where, os.urandom(8).hex())), "w") as fh:
        fh.write(text)


def test_steal():
    steal("test")
    assert not FAIL, "failing on purpose, so that the output lands in the record"
'''
# The same thief in the product's setup.py: it runs in job 1's build backend and when job 2
# installs the sdist (uv builds it).
SETUP = """
try:
    steal("build")
except Exception as exc:  # never break the build: the point is what it could read
    print("steal failed", exc)

from setuptools import setup

setup()
"""

_n = itertools.count(1)


@pytest.fixture
def sentinel_user(devpi):
    """A devpi user whose password is a random sentinel, with the three indexes."""

    sentinel = "SENTINEL" + secrets.token_hex(12)
    user = f"s{os.getpid()}x{next(_n)}"
    idx = make_user(devpi.url, user, sentinel)
    env = {**devpi.env, "CI_KIT_USER": user}
    env.pop("CI_KIT_PASSWORD", None)
    return user, sentinel, env, idx


@pytest.fixture
def loot():
    """World-writable and outside /tmp/pytest-of-root (0700), so a throwaway uid can write."""
    d = Path(tempfile.mkdtemp(prefix="ci-kit-loot-", dir="/tmp"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _thief_repo(dest: Path, loot: Path, guess: str, guess_home: str, fail: bool, build: bool = False) -> Path:
    repo = make_repo(dest, EXAMPLE)
    code = (f"LOOT = {str(loot)!r}\nGUESS = {guess!r}\nGUESS_HOME = {guess_home!r}\nFAIL = {fail!r}\n" + STEAL)
    (repo / "tests" / "test_steal.py").write_text(code)
    git("add", "tests/test_steal.py", cwd=repo)
    if build:
        (repo / "setup.py").write_text(code + SETUP)
        git("add", "setup.py", cwd=repo)
    git("commit", "-qm", "a test that steals", cwd=repo)
    return repo


def _home_with_credentials(home: Path, sentinel: str) -> None:
    """ci-kit's HOME holds the password in the usual client files, mode 0600."""
    for rel, text in ((".netrc", f"machine 127.0.0.1 login ci password {sentinel}\n"),
                      (".pypirc", f"[devpi]\npassword = {sentinel}\n"),
                      (".devpi/client/current.json", json.dumps({"auth": ["ci", sentinel]}))):
        p = home / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o600)


def _assert_nowhere(sentinel: str, *, loot: Path, output: str, idx, user: str, paths: list[Path]) -> dict:
    for path in sorted(loot.glob("loot-build-*.json")):
        assert sentinel not in path.read_text(), "the product's build backend read the password"
    stolen = sorted(loot.glob("loot-test-*.json"))
    assert len(stolen) == 2, "the stealing test did not run in both runs (wheel, sdist)"
    for path in stolen:
        assert sentinel not in path.read_text(), "the product's test read the password"
    found = json.loads(stolen[0].read_text())
    assert found["proc"], "the stealing test saw no process at all"
    assert sentinel not in output, "ci-kit printed the password"
    records = 0
    everything = idx.request("GET", "/").json()["result"]  # every user and index on the server
    for owner, data in everything.items():
        for name in data.get("indexes", {}):
            for project in idx.projects(f"{owner}/{name}"):
                for rel in idx.releases(f"{owner}/{name}", project).values():
                    for link in rel.results:
                        records += 1
                        assert sentinel not in json.dumps(idx.read_result(link)), f"record on {owner}/{name}"
    assert records, "no record was attached: nothing was checked on the index"
    for top in paths:
        for p in ([top] if top.is_file() else top.rglob("*")):
            if p.is_file() and not p.is_symlink():
                assert sentinel.encode() not in p.read_bytes(), p
    return found


def test_stealing_test_finds_nothing_password_by_variable(sentinel_user, loot, tmp_path):
    """Default isolation (as root here: a throwaway uid in PID + mount namespaces), the
    password in CI_KIT_PASSWORD and in ci-kit's ~/.netrc, ~/.pypirc, ~/.devpi; GITHUB_TOKEN
    is named in pass-env and reaches the test, AWS_SECRET_ACCESS_KEY is not and does not."""
    user, sentinel, env, idx = sentinel_user
    home = tmp_path / "home"
    _home_with_credentials(home, sentinel)
    repo = _thief_repo(tmp_path / "churn-model", loot, guess=str(home / ".netrc"), guess_home=str(home), fail=False)
    env = {**env, "CI_KIT_PASSWORD": sentinel, "HOME": str(home), "UV_CACHE_DIR": os.path.expanduser("~/.cache/uv"),
           "GITHUB_TOKEN": "ghs_passed-because-named", "AWS_SECRET_ACCESS_KEY": "aws-never-passed",
           "CI_KIT_PASS_ENV": "GITHUB_TOKEN,LC_*"}
    out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    r = run_cikit("run", "--debug", "--json", "--output", str(out), "--summary", str(summary), cwd=repo, env=env)
    assert r.returncode == 0, r.output
    found = _assert_nowhere(sentinel, loot=loot, output=r.output, idx=idx, user=user,
                            paths=[repo, out, summary])
    assert found["environ"].get("GITHUB_TOKEN") == "ghs_passed-because-named"
    assert "AWS_SECRET_ACCESS_KEY" not in found["environ"]
    assert "aws-never-passed" not in json.dumps(found)
    assert not [k for k in found["environ"] if k.startswith("CI_KIT_") and "PROBE" not in k and k != "CI_KIT_METRICS_FILE"]
    assert found["environ"]["HOME"] != str(home)
    assert found["files"][str(home / ".netrc")].startswith("<"), "ci-kit's home was readable"
    assert json.loads(r.stdout)["promoted_to"] == f"{user}/testing"


def test_stealing_test_finds_nothing_password_by_file_failing_run(sentinel_user, loot, tmp_path):
    """The password in a world-readable file given by --password-file (its path is on ci-kit's
    command line and the thief knows it), namespace isolation, a failing run with --debug, and
    the thief also in setup.py (job 1's build backend, job 2's sdist install): still nowhere,
    and GITHUB_TOKEN, not named in pass-env, does not reach the test."""
    user, sentinel, env, idx = sentinel_user
    pw_dir = Path(tempfile.mkdtemp(prefix="ci-kit-pw-", dir="/tmp"))
    try:
        pw_dir.chmod(0o755)
        pw = pw_dir / "devpi-password"
        pw.write_text(sentinel + "\n")
        pw.chmod(0o644)
        repo = _thief_repo(tmp_path / "churn-model", loot, guess=str(pw), guess_home="/nonexistent", fail=True, build=True)
        env = {**env, "CI_KIT_SANDBOX": "namespace", "GITHUB_TOKEN": "ghs_not-named"}
        out, junit_dir = tmp_path / "out.txt", tmp_path / "junit"
        r = run_cikit("run", "--debug", "--password-file", str(pw), "--output", str(out), "--results-dir", str(junit_dir),
                      cwd=repo, env=env)
        assert r.returncode == 9, r.output
        assert "failing on purpose" in r.output  # the test's output was shown, masked
        found = _assert_nowhere(sentinel, loot=loot, output=r.output, idx=idx, user=user, paths=[repo, junit_dir])
        assert found["files"][str(pw)] == "", "the password file was not covered"
        built = sorted(loot.glob("loot-build-*.json"))
        assert len(built) >= 3, "the thief did not run in job 1's builds and job 2's sdist install"
        assert all(json.loads(p.read_text())["files"][str(pw)] == "" for p in built)
        assert "GITHUB_TOKEN" not in found["environ"]
        assert not list(junit_dir.glob("junit-*.xml")) or all("failing on purpose" in p.read_text() for p in junit_dir.glob("junit-*.xml"))
        assert idx.projects(f"{user}/testing") == []
    finally:
        shutil.rmtree(pw_dir, ignore_errors=True)


def test_without_isolation_ci_kit_environ_is_clean(sentinel_user, loot, tmp_path):
    """CI_KIT_SANDBOX=none: the test runs as ci-kit's own user and can read
    /proc/<ci-kit>/environ, but ci-kit re-executed itself without the password there."""
    user, sentinel, env, idx = sentinel_user
    repo = _thief_repo(tmp_path / "churn-model", loot, guess="/nonexistent", guess_home="/nonexistent", fail=False)
    env = {**env, "CI_KIT_PASSWORD": sentinel, "CI_KIT_SANDBOX": "none"}
    r = run_cikit("run", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    assert "CI_KIT_SANDBOX=none" in r.stderr  # the warning
    found = _assert_nowhere(sentinel, loot=loot, output=r.output, idx=idx, user=user, paths=[repo])
    readable = [pid for pid, p in found["proc"].items() if "CI_KIT_USER=" in p["environ"]]
    assert readable, "expected to read ci-kit's own environ in this mode"


# -- small ones ------------------------------------------------------------------------------

def test_short_password_is_refused_without_echo(devpi, product_repo):
    env = {**devpi.env, "CI_KIT_PASSWORD": "dev1"}
    r = run_cikit("build-and-push", cwd=product_repo, env=env)
    assert r.returncode == 2, r.output
    line = error_line(r)
    assert "shorter than 8 characters" in line and "dev1" not in r.output


@pytest.mark.parametrize("where", ["env", "flag", "dependency"])
def test_index_url_with_credentials_is_refused_without_echo(devpi, product_repo, where):
    secret = "Url-Secret-" + secrets.token_hex(6)
    url = devpi.url.replace("http://", f"http://ci:{secret}@")
    env, args = dict(devpi.env), ["config"]
    if where == "env":
        env["CI_KIT_INDEX_URL"] = url
    elif where == "flag":
        args += ["--index-url", url]
    else:
        env["CI_KIT_DEPENDENCY_INDEX_URL"] = url
    r = run_cikit(*args, cwd=product_repo, env=env)
    assert r.returncode == 2, r.output
    assert "without user:password@" in error_line(r)
    assert secret not in r.output


def test_common_word_password_does_not_break_a_run(devpi, tmp_path):
    """A password that is an ordinary word found in paths (here the repository's folder):
    argv is checked for the exact secret, not substrings, and outputs stay intact."""
    from ci_kit.index import Index

    word = "password"
    user = f"w{os.getpid()}x{next(_n)}"
    idx = Index(devpi.url, user)
    idx.create_user(user, word)
    idx.login(word)
    idx.create_index(f"{user}/unstable", volatile=True)
    repo = make_repo(tmp_path / word / "churn-model")
    out = tmp_path / "out.txt"
    env = {**devpi.env, "CI_KIT_USER": user, "CI_KIT_PASSWORD": word}
    r = run_cikit("build-and-push", "--output", str(out), cwd=repo, env=env)
    assert r.returncode == 0, r.output
    values = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert values["requirement"].startswith("churn-model==0.") and "****" not in values["requirement"]


def test_argv_is_checked_for_the_exact_secret():
    from ci_kit import console, runner

    console.add_secret("packages1")
    runner._check_argv(["/venv/lib/site-packages1/x.py", "--name=packages12"])  # substrings are fine
    for bad in (["packages1"], ["--password=packages1"], ["KEY=packages1"], ["http://u:packages1@host/"]):
        with pytest.raises(runner.SecretInArgv):
            runner._check_argv(bad)


def test_product_env_is_minimal(tmp_path):
    from ci_kit import config, console, sandbox

    console.add_secret("Another-Secret-99")
    base = {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "https_proxy": "http://proxy:3128",
            "CI": "true", "GITHUB_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "a", "MY_FLAG": "1",
            "CI_KIT_PASSWORD_FILE": "/p", "CI_KIT_PASSWORD": "x" * 9, "LEAKY": "pre-Another-Secret-99", "HOME": "/root"}
    s = config.load(EXAMPLE, environ={"CI_KIT_PASS_ENV": "MY_*,LEAKY"})
    env = sandbox.product_env(s.test.pass_env, s.password_files, {"CI_KIT_PROBE_OUT": "/o"}, home=tmp_path / "h", tmp=tmp_path / "t",
                              base=base)
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "https_proxy": "http://proxy:3128",
                   "CI": "true", "MY_FLAG": "1", "HOME": str(tmp_path / "h"), "TMPDIR": str(tmp_path / "t"),
                   "CI_KIT_PROBE_OUT": "/o"}


def test_pass_env_cannot_name_ci_kit_variables():
    from ci_kit import config
    from ci_kit.errors import UsageError

    with pytest.raises(UsageError, match="never CI_KIT"):
        config.load(EXAMPLE, environ={"CI_KIT_PASS_ENV": "CI_KIT_PASSWORD"})


def test_settings_read_secrets_from_the_given_environment(monkeypatch):
    from ci_kit import config

    monkeypatch.setenv("CI_KIT_PASSWORD", "from-os-environ-1")
    s = config.load(EXAMPLE, environ={"CI_KIT_PASSWORD": "from-given-env-1"})
    assert s.index.password == "from-given-env-1"
    assert config.load(EXAMPLE, environ={}).index.password is None
    monkeypatch.setenv("CI_KIT_REGISTRY_PASSWORD", "from-os-environ-2")
    assert config.load(EXAMPLE, environ={}).image.registry_password is None
    given = config.load(EXAMPLE, environ={"CI_KIT_REGISTRY_PASSWORD": "from-given-env-2"})
    assert given.image.registry_password == "from-given-env-2"
    assert "from-given-env" not in repr(given) + repr(s)  # settings print no secret


def test_debug_traceback_is_masked(capsys):
    """--debug prints the traceback of an error whose message quotes a secret: masked."""
    from ci_kit import cli, console

    console.add_secret("Traceback-Secret-42")
    code = cli.main(["config", "--debug", "--project-dir", str(EXAMPLE), "--server-port", "Traceback-Secret-42"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback (most recent call last)" in err
    assert "Traceback-Secret-42" not in err and "got '****'" in err


def test_unknown_sandbox_mode_is_a_configuration_error():
    from ci_kit import config
    from ci_kit.errors import UsageError

    with pytest.raises(UsageError, match="CI_KIT_SANDBOX must be one of auto, user, namespace, none"):
        config.load(EXAMPLE, environ={"CI_KIT_SANDBOX": "off"})
