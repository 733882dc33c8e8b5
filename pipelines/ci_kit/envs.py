"""Fresh virtual environments made with uv: one per Python version under test.

uv makes a venv and installs a wheel in a fraction of the time venv + pip take, and its
cache makes the second Python version nearly free.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ci_kit import runner
from ci_kit.errors import EnvFailed, UsageError


@functools.cache
def uv_bin() -> str:
    try:
        from uv import find_uv_bin  # the PyPI package ships the binary

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise UsageError("uv is not installed", "pip install uv (ci-kit depends on it)") from None
        return found


@functools.cache
def find_python(version: str) -> str:
    """An interpreter for MAJOR.MINOR: this one, one on PATH, or one of pyenv's (in
    $PYENV_ROOT, pyenv's own setting, else ~/.pyenv: a CI job may run with another HOME)."""
    if version == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return sys.executable
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for cand in (shutil.which(f"python{version}"),
                 *sorted(glob.glob(os.path.join(glob.escape(pyenv), f"versions/{version}.*/bin/python{version}")), reverse=True),
                 *sorted(glob.glob(f"/usr/bin/python{version}")),
                 *sorted(glob.glob(f"/usr/local/bin/python{version}"))):
        if cand and os.access(cand, os.X_OK) and _works(cand, version):
            return cand
    raise UsageError(f"no Python {version} found on this machine",
                     f"install it (or remove {version} from python-versions); ci-kit looks on PATH and in pyenv")


def _works(python: str, version: str) -> bool:
    proc = runner.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], show=False)
    return proc.returncode == 0 and proc.stdout.strip() == version


@dataclass(frozen=True)
class Env:
    path: Path
    python: Path
    version: str

    @property
    def bin(self) -> Path:
        return self.python.parent

    def site_packages(self) -> list[str]:
        proc = runner.run([str(self.python), "-c", "import sysconfig,json; print(json.dumps(sorted({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})))"], show=False)
        import json

        return [str(p) for p in json.loads(proc.stdout)]

    def full_version(self) -> str:
        return runner.run([str(self.python), "-c", "import platform; print(platform.python_version())"], show=False).stdout.strip()


def uv_env() -> dict[str, str]:
    # Never download an interpreter behind the user's back: this machine may be offline.
    return runner.child_env({"UV_PYTHON_DOWNLOADS": "never"})


def dependency_index_args(url: str) -> list[str]:
    """Where uv takes the product's dependencies and test tools from, one rule for
    `ci-kit test` and `ci-kit image`: dependency-index-url when set, else uv's own
    configuration (UV_INDEX_URL / UV_DEFAULT_INDEX, uv.toml), which is PyPI by default."""
    return ["--index-url", url] if url else []


def dependency_index_name(url: str) -> str:
    """The same rule, in words, for error messages."""
    if url:
        return url
    configured = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
    return configured or "uv's default index (PyPI)"


def create(path: Path, version: str, *, run: runner.Run = runner.run) -> Env:
    python = find_python(version)
    proc = run([uv_bin(), "venv", "--quiet", "--python", python, str(path)], env=uv_env())
    if proc.returncode != 0:
        raise EnvFailed(f"cannot create a Python {version} environment: {proc.stdout.strip()[-300:]}", "check uv and the interpreter")
    return Env(path, path / "bin" / "python", version)


def install(env: Env, requirements: list[str], *, index_url: str = "", run: runner.Run = runner.run) -> str:
    """Install into env; returns uv's output. Raises with uv's own words on failure.
    `run` starts uv (tests pass a stand-in)."""
    args = [uv_bin(), "pip", "install", "--python", str(env.python), *requirements, *dependency_index_args(index_url)]
    from ci_kit import sandbox  # an sdist is built here: the product's build backend runs (sandbox.confine)

    proc = run(sandbox.confine(args), env=uv_env())
    if proc.returncode != 0:
        last = [line for line in proc.stdout.splitlines() if line.strip()][-6:]
        raise EnvFailed(f"installing into the Python {env.version} environment failed: " + " / ".join(x.strip() for x in last),
                         "check the product's dependencies and dependency-index-url")
    return proc.stdout
