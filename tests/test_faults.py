"""Survives faults: the server lifecycle when the machine is not as ci-kit left it (a port
taken by someone else, a stale pid file, a database a crash left mid-write), and cancelled
runs (SIGTERM, SIGINT, SIGKILL) that must leave no folders and no processes behind.

Real parts only: a real devpi-server, real builds and test runs, real signals; 127.0.0.1.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import (
    CIKIT,
    Devpi,
    Result,
    alive,
    assert_no_process_in,
    clean_env,
    error_line,
    free_port,
    git,
    make_repo,
    make_user,
    processes_holding,
    run_cikit,
)

PASSWORD = "fault-Test-Pa55word-k3j9"


# -- helpers ---------------------------------------------------------------------------------

def server_env(server_dir: Path, port: int) -> dict[str, str]:
    return {**clean_env(), "CI_KIT_SERVER_DIR": str(server_dir), "CI_KIT_SERVER_PORT": str(port),
            "CI_KIT_PASSWORD": PASSWORD, "CI_KIT_USER": "ci"}


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class Recorder(http.server.BaseHTTPRequestHandler):
    """An HTTP server that is not ours: it pretends to be a devpi-server of another
    directory and records every request, bodies included."""

    seen: ClassVar[list[bytes]] = []  # shared by the server's handler instances, read by the test

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Recorder.seen.append((self.requestline + "\n" + str(self.headers)).encode() + body)
        data = b'{"type": "status", "result": {"uuid": "0123456789abcdef", "serverdir": "/elsewhere", "role": "MASTER"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = _any

    def log_message(self, *args: object) -> None:
        pass


# -- the server lifecycle ------------------------------------------------------------------

def test_port_held_by_a_plain_listener_is_one_line_naming_port_and_process(tmp_path):
    received: list[bytes] = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]

        def serve() -> None:  # accept and record whatever is sent, answer nothing
            s.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = s.accept()
                    with conn:
                        conn.settimeout(1)
                        received.append(conn.recv(65536))
                except OSError:
                    continue

        stop = threading.Event()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            r = run_cikit("server", "start", env=server_env(tmp_path / "srv", port), timeout=60)
        finally:
            stop.set()
            t.join(5)
    assert r.returncode == 13, r.output
    line = error_line(r)
    assert f"port {port}" in line and f"pid {os.getpid()}" in line, line
    assert not any(PASSWORD.encode() in b for b in received), received
    assert not (tmp_path / "srv" / "root.password").exists()  # nothing was started or initialised


def test_port_held_by_another_http_server_gets_no_password(tmp_path, devpi: Devpi):
    Recorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    port = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        # nothing of ours runs for this directory: the port's holder is named
        r = run_cikit("server", "start", env=server_env(tmp_path / "srv", port), timeout=60)
        assert r.returncode == 13, r.output
        line = error_line(r)
        assert f"port {port}" in line and f"pid {os.getpid()}" in line, line
        # our devpi-server runs for this directory, but this port is someone else's
        r2 = run_cikit("server", "start", env=server_env(devpi.server_dir, port), timeout=60)
        assert r2.returncode == 13, r2.output
        line2 = error_line(r2)
        assert f"port {port} is held by pid {os.getpid()}" in line2, line2
        st = run_cikit("server", "status", env=server_env(devpi.server_dir, port), timeout=60)
        assert st.returncode == 7 and "not running" in st.stdout and f"port {port} is held by" in st.stdout, st.output
    finally:
        httpd.shutdown()
        httpd.server_close()
    for pw in (PASSWORD, devpi.password):
        assert not any(pw.encode() in req for req in Recorder.seen), Recorder.seen
    assert not any(b"+login" in req for req in Recorder.seen), Recorder.seen


@pytest.mark.slow  # starts a devpi-server of its own
def test_stale_pid_file_is_not_signalled_and_start_works(tmp_path):
    server_dir, port = tmp_path / "srv", free_port()
    server_dir.mkdir()
    env = server_env(server_dir, port)
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (server_dir / "ci-kit-server.pid").write_text(f"{sleeper.pid}\n")
        st = run_cikit("server", "status", env=env)
        assert st.returncode == 7 and "stale pid file" in st.stdout and f"pid {sleeper.pid} (sleep 300)" in st.stdout, st.output
        r = run_cikit("server", "stop", env=env)
        assert r.returncode == 0, r.output
        assert "stale pid file" in r.stderr and "removed it" in r.stderr, r.output
        assert sleeper.poll() is None, "server stop killed an unrelated process"
        assert not (server_dir / "ci-kit-server.pid").exists()
        (server_dir / "ci-kit-server.pid").write_text(f"{sleeper.pid}\n")
        r = run_cikit("server", "start", env=env, timeout=180)
        assert r.returncode == 0, r.output
        assert "running" in r.stdout and "ci/unstable" in r.stdout, r.output
        assert sleeper.poll() is None
        server_pid = int((server_dir / "ci-kit-server.pid").read_text())
        assert server_pid != sleeper.pid and alive(server_pid)
    finally:
        run_cikit("server", "stop", env=env)
        sleeper.kill()
        sleeper.wait()


def _crash_mid_write(db: Path) -> None:
    """A writer killed in the middle of a transaction, pages already spilled into the
    database: what SQLite leaves after a crash (a hot journal next to a changed file)."""
    code = ("import os, signal, sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('pragma cache_size=1'); c.execute('begin immediate')\n"
            "c.execute('update kv set keyname = hex(randomblob(3000))')\n"
            "c.execute('insert into changelog(serial, data) select serial + 100000, randomblob(5000) from changelog')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code, str(db)], timeout=60)


def _snapshot(db: Path) -> tuple[object, ...]:
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return (c.execute("select key, keyname, serial from kv order by key").fetchall(),
                c.execute("select max(serial), count(*) from changelog").fetchone())
    finally:
        c.close()


@pytest.mark.slow  # starts a devpi-server of its own
def test_crash_left_sqlite_journal_is_recovered_on_start(tmp_path):
    server_dir, port = tmp_path / "srv", free_port()
    env = server_env(server_dir, port)
    r = run_cikit("server", "start", env=env, timeout=180)
    assert r.returncode == 0, r.output
    try:
        assert run_cikit("server", "stop", env=env).returncode == 0
        db = server_dir / ".sqlite"
        before = _snapshot(db)
        _crash_mid_write(db)
        assert (server_dir / ".sqlite-journal").stat().st_size > 0, "no hot journal was left"
        st = run_cikit("server", "status", env=env)
        assert ".sqlite-journal" in st.stdout, st.output
        r = run_cikit("server", "start", env=env, timeout=180)
        assert r.returncode == 0, r.output
        assert "recovered the database after a crash" in r.stderr, r.output
        assert "ci/stable, ci/testing, ci/unstable" in r.stdout, r.output
        assert not (server_dir / ".sqlite-journal").exists()
        assert _snapshot(db) == before
        from ci_kit.index import Index

        Index(f"http://127.0.0.1:{port}", "ci").login(PASSWORD)  # the user's password still works
    finally:
        run_cikit("server", "stop", env=env)


# -- cancellation --------------------------------------------------------------------------

SLOW_TEST = '''
import os, pathlib, time

FLAG = pathlib.Path({flag!r})


def test_slow_when_asked():
    if FLAG.exists():
        (FLAG.parent / f"running-{{os.getpid()}}").write_text("")
        time.sleep(120)
'''


@pytest.fixture(scope="module")
def slow_product(devpi: Devpi, tmp_path_factory: pytest.TempPathFactory):
    """The example product plus a test that sleeps while a flag file exists, built and
    pushed once for a user of its own; yields (env, repo, requirement, commit, flag)."""

    import tempfile

    base = tmp_path_factory.mktemp("slow")
    # the product's tests run as another uid (pipelines/ci_kit/sandbox.py): the flag lives where
    # that uid can see and write it, not under pytest's private temporary folder
    flagdir = Path(tempfile.mkdtemp(prefix="faults-flag-", dir="/tmp"))
    flagdir.chmod(0o777)
    flag = flagdir / "slow"
    repo = base / "repo"
    make_repo(repo)
    (repo / "tests" / "test_slow.py").write_text(SLOW_TEST.format(flag=str(flag)))
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "a test that can be made slow", cwd=repo)
    user, password = f"faults{os.getpid()}", "pw-faults-Zq9x"
    make_user(devpi.url, user, password)
    env = {**devpi.env, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password}
    r = run_cikit("build-and-push", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    return env, repo, r.stdout.strip().splitlines()[-1], git("rev-parse", "HEAD", cwd=repo), flag


def _start_slow(args: list[str], env: dict[str, str], repo: Path, flag: Path) -> subprocess.Popen[str]:
    """Start ci-kit and return once the product's tests are running (progress says so and
    the slow test has written its marker)."""
    for m in flag.parent.glob("running-*"):
        m.unlink()
    flag.write_text("")
    proc = subprocess.Popen([CIKIT, *args], cwd=repo, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    proc.lines, proc.reader = lines, reader  # type: ignore[attr-defined]
    wait_until(lambda: any(flag.parent.glob("running-*")) or proc.poll() is not None, 240, "the product's tests to run")
    assert proc.poll() is None, "".join(lines)
    assert any("test: pytest" in line for line in lines), "".join(lines)
    return proc


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.wait(timeout=60)
    proc.reader.join(10)  # type: ignore[attr-defined]
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    return proc.returncode, "".join(proc.lines)  # type: ignore[attr-defined]


def _leftovers(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.glob("ci-kit-*"))


def _assert_clean(tmpdir: Path) -> None:
    assert _leftovers(tmpdir) == []
    assert_no_process_in(tmpdir)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_cancelled_test_stage_stops_children_and_removes_its_folders(slow_product, private_tmp, tmp_path, sig, code):
    env, repo, requirement, commit, flag = slow_product
    env = {**env, "TMPDIR": str(private_tmp)}
    args = ["test", requirement, "--commit", commit, "--junit-dir", str(tmp_path / "junit")]
    proc = _start_slow(args, env, repo, flag)
    assert _leftovers(private_tmp) and processes_holding(str(private_tmp))  # the checks below can see them
    proc.send_signal(sig)
    rc, err = _finish(proc)
    assert rc == code, err
    errors = [line for line in err.splitlines() if line.startswith("ci-kit: ")]
    assert errors == [f"ci-kit: error: interrupted ({sig.name})"], err
    assert "Traceback" not in err
    _assert_clean(private_tmp)
    flag.unlink()
    r = run_cikit(*args, cwd=repo, env=env)
    assert r.returncode == 0, r.output
    _assert_clean(private_tmp)


def test_cancelled_run_stops_children_and_removes_its_folders(slow_product, private_tmp):
    env, repo, requirement, _commit, flag = slow_product
    env = {**env, "TMPDIR": str(private_tmp)}
    proc = _start_slow(["run"], env, repo, flag)
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 143, err
    assert [line for line in err.splitlines() if line.startswith("ci-kit: ")] == ["ci-kit: error: interrupted (SIGTERM)"], err
    _assert_clean(private_tmp)
    flag.unlink()
    r = run_cikit("run", cwd=repo, env=env)
    assert r.returncode == 0, r.output
    assert f"{requirement} promoted to" in r.stdout, r.output
    _assert_clean(private_tmp)


def test_after_sigkill_the_next_run_removes_the_leftovers(slow_product, private_tmp, tmp_path):
    env, repo, requirement, commit, flag = slow_product
    env = {**env, "TMPDIR": str(private_tmp)}
    args = ["test", requirement, "--commit", commit, "--junit-dir", str(tmp_path / "junit")]
    proc = _start_slow(args, env, repo, flag)
    proc.kill()
    _finish(proc)
    left = _leftovers(private_tmp)
    assert left and processes_holding(str(private_tmp)), "SIGKILL left nothing: this test proves nothing"
    flag.unlink()
    r = run_cikit(*args, cwd=repo, env=env)
    assert r.returncode == 0, r.output
    for name in left:
        assert f"cleanup: removed {private_tmp / name}" in r.stderr, r.output
    _assert_clean(private_tmp)


# -- the runner ----------------------------------------------------------------------------

def test_timeout_stops_the_whole_group_and_is_a_cikit_error(tmp_path):
    from ci_kit import runner
    from ci_kit.errors import TimedOut

    mark = str(tmp_path / "timeout-mark")
    started = time.monotonic()
    with pytest.raises(TimedOut) as info:  # a shell with a grandchild: both must go
        runner.run(["sh", "-c", "sleep 60 & sleep 60; :"], timeout=0.5, show=False,
                   env={**os.environ, "FAULT_MARK": mark})
    assert info.value.exit_code == 15 and "did not finish within" in info.value.message
    assert time.monotonic() - started < 15
    assert processes_holding(mark) == []


def test_a_stage_whose_child_outlives_its_limit_ends_with_exit_15_and_one_line(tmp_path):
    """Through the CLI's error boundary: a timeout inside a stage (the image lock, the
    audit) is the documented exit 15 with one error line, never subprocess.TimeoutExpired
    surfacing as "internal error" (exit 1), and the hung child's whole group is gone."""
    mark = str(tmp_path / "timeout-mark")
    stage = (  # `ci-kit build`, whose first step runs a child that hangs past its limit
        "import os, sys\n"
        "from ci_kit import cli, repo, runner\n"
        "def hangs(project_dir):\n"
        "    runner.run(['sh', '-c', 'sleep 60 & sleep 60; :'], timeout=0.5,\n"
        f"               env={{**os.environ, 'FAULT_MARK': {mark!r}}})\n"
        "repo.require_project = hangs\n"
        "sys.exit(cli.main(['build']))\n")
    proc = subprocess.run([sys.executable, "-c", stage], cwd=tmp_path, env=clean_env(), capture_output=True,
                          text=True, timeout=60)
    r = Result(proc.returncode, proc.stdout, proc.stderr)
    assert r.returncode == 15, r.output
    assert "sh did not finish within 0.5s and was stopped" in error_line(r)
    assert processes_holding(mark) == []


def test_spawn_keeps_no_log_handle_open(tmp_path):
    """The log file is the child's: ci-kit closes its own handle at once (not whenever the
    garbage collector gets to it, with a ResourceWarning)."""
    import gc
    import warnings

    from ci_kit import runner

    log = tmp_path / "spawned.log"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        proc = runner.spawn(["sh", "-c", "echo hello"], log=log)
        proc.wait(10)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning) and str(log) in str(w.message)], caught
    mine = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]
    assert str(log) not in mine
    assert log.read_text() == "hello\n"


def test_database_sqlite_cannot_recover_is_one_clear_error(tmp_path):
    """Not an exit-13 loop with devpi's traceback in a log: one line saying what is wrong,
    and a hint that says exactly what to run."""
    server_dir = tmp_path / "srv"
    server_dir.mkdir()
    (server_dir / ".serverversion").write_text("6")
    (server_dir / ".sqlite").write_bytes(b"this is not a database" * 200)
    (server_dir / ".sqlite-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\0" * 600)
    r = run_cikit("server", "start", env=server_env(server_dir, free_port()), timeout=60)
    assert r.returncode == 13, r.output
    assert "left mid-write by a crash" in error_line(r) and ".sqlite-journal" in error_line(r)
    assert "pragma quick_check" in r.stderr and "restore the directory from a backup" in r.stderr
    assert not (server_dir / "ci-kit-server.pid").exists()


def test_signal_while_a_child_starts_still_stops_that_child(tmp_path, monkeypatch):
    """SIGTERM lands right after the child is forked, before ci-kit has registered it: the
    handler must not raise there (the child would run on, unknown), and the child must go."""
    from ci_kit import runner
    from ci_kit.errors import Interrupted

    mark = str(tmp_path / "starting-mark")
    real_popen = subprocess.Popen

    def popen_then_signal(*args, **kw):  # the signal arrives as Popen returns
        proc = real_popen(*args, **kw)
        os.kill(os.getpid(), signal.SIGTERM)
        return proc

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(runner.subprocess, "Popen", popen_then_signal)
    monkeypatch.setattr(runner, "_cancelled", 0)  # undone to 0 at teardown: later tests may start children
    try:
        runner.stop_on_signals()
        with pytest.raises(Interrupted) as info:
            runner.run(["sleep", "60"], env={**os.environ, "FAULT_MARK": mark}, show=False)
        assert info.value.exit_code == 143
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        runner._cancelled = 0
    assert processes_holding(mark) == []


def test_without_proc_nothing_is_guessed(tmp_path, monkeypatch, devpi: Devpi):
    """On a machine without /proc (a laptop), ci-kit cannot see who holds a port: the
    uuid of the directory still decides whether a server is ours, and a free port is free."""
    from ci_kit import procs, server

    monkeypatch.setattr(procs, "PROC", tmp_path / "no-proc")
    pid, port = int((devpi.server_dir / "ci-kit-server.pid").read_text()), int(devpi.url.rsplit(":", 1)[1])
    assert procs.is_devpi_server(pid, devpi.server_dir)  # from `ps`
    assert server._not_ours(devpi.url, port, devpi.server_dir.resolve(), pid) == ""
    assert server._port_busy(port) is not None and server._port_busy(free_port()) is None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        fake = httpd.server_address[1]
        assert "serves /elsewhere" in server._not_ours(f"http://127.0.0.1:{fake}", fake, devpi.server_dir.resolve(), pid)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert runner_sweep_is_noop(tmp_path)


def runner_sweep_is_noop(tmp_path: Path) -> bool:
    """Without /proc a dead owner cannot be told from a live one: the sweep removes nothing."""
    from ci_kit import runner

    left = tmp_path / "ci-kit-test-old"
    left.mkdir()
    (left / runner.OWNER_FILE).write_text("999999 1 pid:[1]\n")
    return runner.sweep("ci-kit-test-", base=tmp_path) == [] and left.exists()
