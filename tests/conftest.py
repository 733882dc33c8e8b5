"""Fixtures with real parts: a devpi-server started with `ci-kit server start`, real git
repositories holding the example product, and the real `ci-kit` executable.

Suites that need an engine or tool the machine lacks skip with a reason on a laptop and
fail instead when CI_KIT_REQUIRE_ALL=1 (set by .ci/run): CI never skips.

Two layers: the end-to-end suites here are the specification and are marked `slow`
(automatically when they use a fixture below that starts a real part); tests/unit/ is the
fast layer, `pytest -m "not slow"`, in seconds and without servers, engines or children.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "churn-model"
CIKIT = str(Path(sys.executable).with_name("ci-kit"))
GIT_ID = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
          "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}


# Fixtures that start a real part (devpi-server, the ci-kit executable, Docker, act, a JVM
# for the Jenkins harness): a test using any of them, directly or through another fixture,
# is end to end and marked `slow`, so `-m "not slow"` is the fast layer.
REAL_PARTS = frozenset({
    "devpi", "fresh_user", "cikit", "own_server", "built", "plain_devpi", "sentinel_user", "slow_product",
    "docker", "act_runner", "kit_wheel", "tools_index", "java_env", "groovy", "groovy_lint",
})  # test_jenkins's `fake` and `agent` need groovy: listed here, they also caught the unit layer's `fake` (FakeIndex)


FAST_LIMIT = 5.0  # seconds: a test without `slow` that takes longer is named at the end of the run
_too_slow: list[tuple[str, float]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_PARTS.intersection(getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > FAST_LIMIT and "slow" not in report.keywords:
        _too_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Keep the fast layer fast: say which unmarked test took longer than FAST_LIMIT."""
    if _too_slow:
        terminalreporter.section(f"not marked slow, but slower than {FAST_LIMIT:g}s: mark them @pytest.mark.slow")
        for nodeid, seconds in _too_slow:
            terminalreporter.write_line(f"{seconds:6.1f}s {nodeid}")


def require(condition: object, reason: str) -> None:
    """Skip on a laptop without the tool; fail in CI, where nothing may skip."""
    if condition:
        return
    if os.environ.get("CI_KIT_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI but missing: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The environment minus any CI_KIT_* of the developer's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CI_KIT_") or k == "CI_KIT_REQUIRE_ALL"}


@dataclass
class Devpi:
    url: str
    user: str
    password: str
    server_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def index(self):
        from ci_kit.index import Index

        idx = Index(self.url, self.user)
        idx.login(self.password)
        return idx


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cikit(*args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None,
              timeout: float = 600) -> Result:
    proc = subprocess.run([CIKIT, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ID}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(dest: Path, source: Path = EXAMPLE, *, quality: bool = False) -> Path:
    """A git repository of the example product. Without `quality`, its quality gate
    ([tool.ci-kit.quality...]) is left out: the suites that test the flow, attacks and bad
    input append `key = value` lines to [tool.ci-kit] and use test commands that write no
    evaluation record; the quality suites ask for it (or set CI_KIT_QUALITY)."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"))
    pyproject = dest / "pyproject.toml"
    if not quality and pyproject.is_file():
        text = pyproject.read_text()
        cut = text.find("\n# The quality gate:")
        cut = cut if cut >= 0 else text.find("\n[tool.ci-kit.quality")
        if cut >= 0:
            pyproject.write_text(text[:cut].rstrip("\n") + "\n")
    (dest / ".gitignore").write_text("dist/\nci-kit-results/\nci-kit-image/\n__pycache__/\n*.egg-info/\nbuild/\n")
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "churn model", cwd=dest)
    return dest


@pytest.fixture(scope="session")
def cikit() -> str:
    assert os.path.exists(CIKIT), f"ci-kit is not installed next to {sys.executable}"
    return CIKIT


@pytest.fixture(scope="session")
def devpi(tmp_path_factory: pytest.TempPathFactory, cikit: str):
    require(shutil.which("devpi-server", path=str(Path(sys.executable).parent)) or shutil.which("devpi-server"),
            "devpi-server is not installed (pip install 'ci-kit[server]')")
    server_dir = tmp_path_factory.mktemp("devpi")
    port = free_port()
    password = "devpi-test-Pa55word-7fq2"
    env = {**clean_env(), "CI_KIT_SERVER_DIR": str(server_dir), "CI_KIT_SERVER_PORT": str(port),
           "CI_KIT_PASSWORD": password, "CI_KIT_USER": "ci", "CI_KIT_INDEX_URL": f"http://127.0.0.1:{port}"}
    r = run_cikit("server", "start", env=env, timeout=180)
    assert r.returncode == 0, r.output
    env.pop("CI_KIT_SERVER_DIR")
    env.pop("CI_KIT_SERVER_PORT")
    yield Devpi(f"http://127.0.0.1:{port}", "ci", password, server_dir, env)
    run_cikit("server", "stop", env={**env, "CI_KIT_SERVER_DIR": str(server_dir), "CI_KIT_SERVER_PORT": str(port)})


_users = itertools.count(1)


def make_user(url: str, user: str, password: str):
    """A devpi user with its unstable (volatile), testing and stable (non-volatile)
    indexes, as `ci-kit server start` makes them; returns its logged-in Index."""
    from ci_kit.index import Index

    idx = Index(url, user)
    idx.create_user(user, password)
    idx.login(password)
    for name, volatile in (("unstable", True), ("testing", False), ("stable", False)):
        idx.create_index(f"{user}/{name}", volatile=volatile)
    return idx


@pytest.fixture
def fresh_user(devpi: Devpi) -> Devpi:
    """A user of its own with unstable (volatile), testing and stable (non-volatile) indexes."""
    user = f"u{os.getpid()}x{next(_users)}"
    password = f"pw-{user}-Zq9"
    make_user(devpi.url, user, password)
    env = {**devpi.env, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password}
    return Devpi(devpi.url, user, password, devpi.server_dir, env)


@pytest.fixture
def product_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "churn-model")


def error_line(r: Result) -> str:
    """The one error line ci-kit printed; also checks there is one and no traceback."""
    errors = [line for line in r.stderr.splitlines() if line.startswith("ci-kit: error: ")]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.output, r.output
    return errors[0]


# -- processes and folders a run may leave behind (the fault suites) ------------------------

NUL = b"\0"


def alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def processes_holding(text: str) -> list[str]:
    """Live processes whose command line or environment holds text (e.g. a private TMPDIR),
    as "PID: command line"."""
    key, found = text.encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid() or not alive(int(entry.name)):
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            if key in argv or key in (entry / "environ").read_bytes():
                found.append(f"{entry.name}: {argv.replace(NUL, b' ')[:150].decode(errors='replace')}")
        except OSError:
            continue
    return found


def assert_no_process_in(tmpdir: Path, wait: float = 5.0) -> None:
    """No process of the run is left working in its TMPDIR (given `wait` seconds to end)."""
    deadline = time.monotonic() + wait
    while processes_holding(str(tmpdir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_holding(str(tmpdir)) == []


@pytest.fixture
def private_tmp(tmp_path: Path) -> Path:
    """A TMPDIR of the test's own: its leftovers and processes are this run's only."""
    (tmp_path / "tmp").mkdir()
    return tmp_path / "tmp"
