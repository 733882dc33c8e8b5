"""The Docker engine, through the docker CLI: is it there, build, smoke-test.

The CLI (run by runner.py, like every child) rather than the SDK: it honours DOCKER_HOST
and docker's own configuration the way users expect, and its output is what they would
see by hand. The SDK is used only for registry logins (registry.py), which the CLI would
write to a file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ci_kit import console, runner
from ci_kit.errors import ImageError, TimedOut, UsageError
from ci_kit.image import context
from ci_kit.release import Spec

TAG_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMPORT_OK = "ci-kit: import check passed"


def docker_bin() -> str:
    found = shutil.which("docker")
    if not found:
        raise ImageError("the docker command is not installed",
                         "install Docker (on Debian: scripts/start-docker installs docker.io and starts the engine)")
    return found


def docker(*args: str, timeout: float | None = None, show: bool = True) -> subprocess.CompletedProcess[str]:
    """`docker ARGS`; a timeout is an image failure (exit 11), with the engine to blame."""
    try:
        return runner.run([docker_bin(), *args], show=show, timeout=timeout)
    except TimedOut:
        raise ImageError(f"docker {args[0]} did not finish within {timeout:.0f}s", "check the engine (docker info)") from None


def last_line(output: str) -> str:
    """The line of a docker (or pip) output that says what went wrong, for a one-line error."""
    return runner.telling_line(output, r"(?i)error|denied|refused|not found|unknown|failed|no such|manifest",
                               skip=r"^(DEPRECATED| {12})")


def require_engine() -> str:
    """The engine's version, or an ImageError saying where it was looked for."""
    proc = docker("version", "--format", "{{.Server.Version}}", show=False, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ImageError(f"the Docker engine at {where} is not running or not reachable: {last_line(proc.stdout)}",
                         "start it (scripts/start-docker here) or set DOCKER_HOST")
    return proc.stdout.strip().splitlines()[-1]


def docker_tag(version: str) -> str:
    """A PEP 440 version as a Docker tag (a local version's '+' becomes '-')."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version)
    if not TAG_OK.match(tag):
        raise UsageError(f"version {version!r} cannot be a Docker tag", "use a PEP 440 version")
    return tag


def image_tags(version: str, moving: list[str]) -> list[str]:
    """VERSION's tag first, then the moving tags once each; checked before anything is built."""
    first = docker_tag(version)
    tags = [first] + [t for t in dict.fromkeys(moving) if t != first]
    for t in tags:
        if not TAG_OK.match(t):
            raise UsageError(f"{t!r} is not a valid Docker tag", "letters, digits, '_', '.', '-'; at most 128")
    return tags


def local_name(name: str) -> str:
    return f"ci-kit/{name}"


def build(ctx: Path, tag: str, no_cache: bool) -> tuple[str, list[str]]:
    """(image id, layer digests) of the context's Dockerfile, built on the host network."""
    iid = ctx / "image.id"
    argv = ["build", "--network", "host", "--iidfile", str(iid), "--tag", tag, "--file", str(ctx / "Dockerfile")]
    if no_cache:
        argv.append("--no-cache")
    proc = docker(*argv, str(ctx), timeout=3600)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"docker build failed: {last_line(proc.stdout)}", "the build's output is above; nothing was pushed")
    image_id = iid.read_text().strip()
    layers = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image_id, show=False).stdout or "[]")
    return image_id, layers


def smoke(image_id: str, spec: Spec, command: str) -> None:
    """The built-in import check, then the configured command, in one container (a second
    `docker run` would cost a container start for nothing): the check prints a marker
    line before the command runs, so a failure is put down to the right one."""
    check = ("import importlib.metadata as m,json,sys;"
             f"v=m.version({spec.name!r});"
             f"r=json.load(open({context.RECORD!r}));"
             f"sys.exit(0 if v=={spec.version!r} and r['requirement']=={str(spec)!r} else 'installed '+v)")
    script = f'{context.VENV}/bin/python -c "$1" || exit 1; echo "{_IMPORT_OK}"; [ -z "$2" ] || exec /bin/sh -c "$2"'
    if command:
        console.step(f"image: smoke test: {command}")
    proc = docker("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", image_id, "-c", script, "smoke", check, command,
                  timeout=1800)
    if proc.returncode == 0:
        return
    console.detail(proc.stdout)
    if _IMPORT_OK not in proc.stdout:
        raise ImageError(f"smoke test failed: {spec} is not importable as installed in the image: {last_line(proc.stdout)}",
                         "nothing was pushed; see the output above")
    raise ImageError(f"smoke test failed (exit {proc.returncode}): {command}: {last_line(proc.stdout)}",
                     "nothing was pushed; the command's output is above")
