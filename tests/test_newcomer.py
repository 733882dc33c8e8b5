"""A newcomer's first ten minutes: a fresh clone of the repository, `scripts/demo`, then
README's five-minute tour step by step as written.

The tour's commands are taken from the code block under "## A five-minute tour" in the
clone's README.md and run in one shell (they `activate`, `export` and `cd`), with only
the placeholders filled: the password (`...`) and SHA / NAME==VERSION / NAME from what
job 1 printed (the tour makes its product, ../my-data-product, from examples/churn-model). The
server is a throwaway one: its port and directory come from CI_KIT_SERVER_PORT,
CI_KIT_SERVER_DIR and CI_KIT_INDEX_URL in the environment, not the default 3141, so the
test never meets another server. The clone is of the committed HEAD, so this tests what
a newcomer would get, not uncommitted edits.
"""

from __future__ import annotations

import re
import secrets
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import GIT_ID, ROOT, clean_env, free_port, require

pytestmark = pytest.mark.slow


def tour_commands(readme: str) -> list[str]:
    """The shell lines of the tour's code block, comments and blank lines dropped."""
    section = readme.split("## A five-minute tour", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "README's tour has no ```sh block"
    lines = []
    for raw in block.group(1).splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def tour_script(lines: list[str], password: str, out: Path) -> str:
    """The tour as one bash script with its placeholders filled."""
    script = ["set -eo pipefail", "set -x"]  # -e: any failing step fails the tour; no -u, as in an interactive shell
    for given in lines:
        line = given.replace("CI_KIT_PASSWORD=...", f"CI_KIT_PASSWORD={shlex.quote(password)}")
        line = line.replace("NAME==VERSION", '"$REQ"').replace("--commit SHA", '--commit "$SHA"')
        line = re.sub(r"\bNAME\b", '"${REQ%%==*}"', line)
        if line.split()[:2] == ["ci-kit", "build-and-push"]:
            # what job 1 printed fills the next commands' placeholders, as a newcomer would copy them
            script += [f"{line} | tee {shlex.quote(str(out))}",
                       f"SHA=$(sed -n 's/^commit //p' {shlex.quote(str(out))})",
                       f"REQ=$(tail -n 1 {shlex.quote(str(out))})"]
            continue
        assert "..." not in line and "SHA" not in line.replace('"$SHA"', ""), f"unfilled placeholder in {line!r}"
        script.append(line)
    return "\n".join(script) + "\n"


def test_fresh_clone_demo_then_readme_tour(tmp_path):
    require(shutil.which("git"), "git is not installed")
    clone = tmp_path / "ci-kit"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, capture_output=True)
    env = clean_env()
    for k in ("VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(k, None)
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if "/.venv/" not in p and not p.endswith("/.venv/bin"))

    demo = subprocess.run(["scripts/demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-8000:]
    assert "churn-model" in demo.stdout and "ci/testing" in demo.stdout, demo.stdout

    port = free_port()
    server_dir = tmp_path / "devpi"
    tour_env = {**env, **GIT_ID, "CI_KIT_SERVER_PORT": str(port), "CI_KIT_SERVER_DIR": str(server_dir),
                "CI_KIT_INDEX_URL": f"http://127.0.0.1:{port}"}
    script = tour_script(tour_commands((clone / "README.md").read_text()), "tour-" + secrets.token_urlsafe(12),
                         tmp_path / "job1.out")
    (tmp_path / "tour.sh").write_text(script)
    try:
        tour = subprocess.run(["bash", str(tmp_path / "tour.sh")], cwd=clone, env=tour_env, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL)
    finally:
        venv_cikit = clone / ".venv" / "bin" / "ci-kit"
        if venv_cikit.exists():
            subprocess.run([str(venv_cikit), "server", "stop", "-q"], env={**tour_env, "CI_KIT_PASSWORD": "unused-stop-pw"},
                           capture_output=True, timeout=120)
    assert tour.returncode == 0, f"{script}\n--- stdout\n{tour.stdout[-4000:]}\n--- stderr\n{tour.stderr[-8000:]}"
    req = (tmp_path / "job1.out").read_text().strip().splitlines()[-1]
    assert req.startswith("churn-model==")
    assert (tmp_path / "my-data-product" / "pyproject.toml").is_file()  # the tour's copy, next to the clone
    # the tour ends with `ci-kit status NAME`: the version, promoted by the tour's job 2
    assert req.split("==")[1] in tour.stdout and "testing" in tour.stdout, tour.stdout
