"""The parts every benchmark row shares: running and timing commands, a throwaway
devpi-server, git copies of the example product, A/B alternation and statistics.

Nothing here asserts a duration: the numbers go to RESULTS.md and are judged there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
EXAMPLE = ROOT / "examples" / "churn-model"
BIN = Path(sys.executable).parent  # the bench venv: ci-kit, devpi, tox (plain) live here
CIKIT = str(BIN / "ci-kit")
DEVPI = str(BIN / "devpi")
TOXUV_BIN = Path(os.environ.get("CI_KIT_BENCH_TOXUV_VENV", BENCH_DIR / ".venv-toxuv")) / "bin"
GIT_ID = {"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
          "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
GITIGNORE = "dist/\nci-kit-results/\n__pycache__/\n*.egg-info/\nbuild/\n.tox/\nci-kit-image/\n"
PASSWORD = "bench-" + os.urandom(9).hex()  # throwaway server, throwaway password


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def mask(text: str) -> str:
    return text.replace(PASSWORD, "***")


def base_env() -> dict[str, str]:
    """This process's environment minus anything that would change what is measured."""
    drop = ("CI_KIT_", "DEVPI_", "VIRTUAL_ENV", "TOX_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


class CommandFailed(RuntimeError):
    pass


@dataclass
class Ran:
    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak: dict[str, float] | None = None


def run(argv: list[str], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
        check: bool = True, memory: bool = False, timeout: float = 1800) -> Ran:
    """Run a command, timing its wall clock; optionally poll the RSS of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    poller = MemoryPoller(proc.pid) if memory else None
    if poller:
        poller.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise CommandFailed(f"timed out after {timeout}s: {mask(' '.join(argv))}\n{mask(err[-3000:])}") from None
    seconds = time.perf_counter() - start
    peak = poller.stop() if poller else None
    ran = Ran(argv, seconds, proc.returncode, out, err, peak)
    if check and proc.returncode != 0:
        raise CommandFailed(f"exit {proc.returncode}: {mask(' '.join(argv))} (in {cwd})\n"
                            f"--- stdout ---\n{mask(out[-4000:])}\n--- stderr ---\n{mask(err[-4000:])}")
    return ran


class MemoryPoller(threading.Thread):
    """Peak RSS of a process and, separately, of its descendants (largest one and the
    largest sum at one moment), sampled every 20 ms with psutil."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process(pid)
        self._interval = interval
        self._halt = threading.Event()
        self.peak = {"main_mb": 0.0, "largest_child_mb": 0.0, "children_sum_mb": 0.0, "tree_sum_mb": 0.0}

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            try:
                main = self._proc.memory_info().rss
                kids = []
                for c in self._proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        kids.append(c.memory_info().rss)
            except psutil.Error:
                break
            mb = 1024 * 1024
            p = self.peak
            p["main_mb"] = max(p["main_mb"], main / mb)
            p["largest_child_mb"] = max(p["largest_child_mb"], max(kids, default=0) / mb)
            p["children_sum_mb"] = max(p["children_sum_mb"], sum(kids) / mb)
            p["tree_sum_mb"] = max(p["tree_sum_mb"], (main + sum(kids)) / mb)
            time.sleep(self._interval)

    def stop(self) -> dict[str, float]:
        self._halt.set()
        self.join(timeout=2)
        return {k: round(v, 1) for k, v in self.peak.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the devpi-server ------------------------------------------------------------------------


@dataclass
class Server:
    work: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_dir(self) -> Path:
        return self.work / "devpi-server"

    def env(self, user: str = "ci", password: str = PASSWORD) -> dict[str, str]:
        """What a ci-kit child process gets: the index and credentials by environment."""
        return {**base_env(), "CI_KIT_INDEX_URL": self.url, "CI_KIT_USER": user, "CI_KIT_PASSWORD": password}

    def _server_env(self) -> dict[str, str]:
        return {**self.env(), "CI_KIT_SERVER_DIR": str(self.server_dir), "CI_KIT_SERVER_PORT": str(self.port)}

    def start(self) -> float:
        ran = run([CIKIT, "server", "start", "-q"], env=self._server_env(), timeout=300)
        return ran.seconds

    def stop(self) -> None:
        run([CIKIT, "server", "stop", "-q"], env=self._server_env(), check=False, timeout=120)

    def index(self, user: str = "ci", password: str = PASSWORD):
        from ci_kit.index import Index

        idx = Index(self.url, user)
        idx.login(password)
        return idx

    def add_user(self, user: str, indexes: dict[str, bool], password: str = PASSWORD) -> None:
        """A devpi user with indexes {name: volatile}."""
        from ci_kit.index import Index

        idx = Index(self.url, user)
        idx.create_user(user, password)
        idx.login(password)
        for name, volatile in indexes.items():
            idx.create_index(f"{user}/{name}", volatile=volatile)


# -- git copies of the product ---------------------------------------------------------------


def git(*args: str, cwd: Path) -> str:
    env = {**base_env(), **GIT_ID}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_repo(dest: Path, customise: Callable[[Path], None] | None = None) -> Path:
    """A git repository holding a copy of examples/churn-model (as tests/conftest.py does),
    optionally changed by `customise` before the first commit."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build",
                                                                  "ci-kit-results", ".tox"))
    (dest / ".gitignore").write_text(GITIGNORE)
    if customise:
        customise(dest)
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "churn model", cwd=dest)
    return dest


def new_commit(repo: Path, label: str) -> str:
    """A new commit, hence a new setuptools_scm version (+g<sha>); not timed."""
    git("commit", "-q", "--allow-empty", "-m", f"bench: {label}", cwd=repo)
    shutil.rmtree(repo / "dist", ignore_errors=True)
    shutil.rmtree(repo / "ci-kit-results", ignore_errors=True)
    return git("rev-parse", "HEAD", cwd=repo)


# -- alternation and statistics --------------------------------------------------------------


def alternate(variants: dict[str, Callable[[int], dict[str, Any]]], rounds: int, warmup: int,
              title: str) -> dict[str, list[dict[str, Any]]]:
    """Run every variant once per round, A and B in turn (the order flips every round so
    neither always goes first); the warm-up rounds are run and thrown away.
    Each callable returns a dict with at least "seconds"."""
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        counted = r >= warmup
        for name in order:
            res = variants[name](r)
            res["round"] = r
            if counted:
                samples[name].append(res)
            log(f"{title}: round {r + 1}/{warmup + rounds}{'' if counted else ' (warm-up)'} {name}: {res['seconds']:.2f} s")
    return samples


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values)}


def paired_ratio(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "seconds") -> dict[str, float]:
    """A/B per round (the two ran next to each other, so drift cancels), then summarised."""
    ratios = [x[key] / y[key] for x, y in zip(a, b, strict=False) if y[key]]
    return stats(ratios)


def paired_diff(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "seconds") -> dict[str, float]:
    return stats([x[key] - y[key] for x, y in zip(a, b, strict=False)])


def step_breakdown(stderr: str, total: float) -> list[tuple[str, float]]:
    """Where a ci-kit command spent its time, from its own progress lines ("[  1.2s] ...").
    Each line's time runs until the next line; before the first line is start-up (imports,
    configuration, login); after the last is the tail (exit)."""
    stamps = [(float(m.group(1)), m.group(2)) for m in re.finditer(r"^\[\s*([\d.]+)s\] (.*)$", stderr, re.MULTILINE)]
    if not stamps:
        return [("total", total)]
    out: list[tuple[str, float]] = [("start-up, configuration, login, first index request", stamps[0][0])]
    for (t, text), (t2, _) in zip(stamps, [*stamps[1:], (total, "")], strict=True):
        out.append((text, max(0.0, t2 - t)))
    return out


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
