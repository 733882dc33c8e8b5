"""The product's git repository: which commit, is it clean, and fresh clones of it."""

from __future__ import annotations

import re
from pathlib import Path

from ci_kit import runner
from ci_kit.errors import CiKitError, ProjectError


def _git(*args: str, cwd: Path) -> tuple[int, str]:
    proc = runner.run(["git", *args], cwd=cwd, show=False)
    return proc.returncode, proc.stdout.strip()


def require_project(project_dir: Path) -> Path:
    """The git top level of a project with a pyproject.toml, or a ProjectError."""
    if not project_dir.is_dir():
        raise ProjectError(f"{project_dir} is not a directory", "pass --project-dir DIR or cd into the project")
    code, top = _git("rev-parse", "--show-toplevel", cwd=project_dir)
    if code != 0:
        raise ProjectError(f"{project_dir} is not inside a git repository",
                           "ci-kit builds and tests commits: run `git init` and commit, or cd into the repository")
    if not (project_dir / "pyproject.toml").is_file():
        raise ProjectError(f"no pyproject.toml in {project_dir}",
                           "run ci-kit in the directory of the Python project (or pass --project-dir)")
    return Path(top)


def head_commit(project_dir: Path) -> str:
    code, sha = _git("rev-parse", "--verify", "HEAD", cwd=project_dir)
    if code != 0:
        raise ProjectError(f"the repository at {project_dir} has no commit yet", "commit your work, then run again")
    return sha


def require_clean(project_dir: Path) -> None:
    """Refuse a work tree with uncommitted changes to tracked files: the build would not
    be the commit it claims to be. Untracked files (dist/, caches) do not count."""
    proc = runner.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=project_dir, show=False)
    code, out = proc.returncode, proc.stdout.rstrip()
    if code != 0:
        raise ProjectError(f"git status failed in {project_dir}: {out}", "check the repository")
    if out:
        changed = ", ".join(line[3:] for line in out.splitlines()[:5])
        raise ProjectError(f"the work tree has uncommitted changes ({changed})",
                           "commit or stash them: ci-kit only builds what a commit holds")


def require_history(project_dir: Path) -> None:
    """Versions come from history (setuptools_scm, hatch-vcs count commits since the last
    tag): a shallow clone, or one whose tags were not fetched, builds a wrong version
    without a word. Refuse both before building."""
    code, shallow = _git("rev-parse", "--is-shallow-repository", cwd=project_dir)
    if code == 0 and shallow == "true":
        raise ProjectError(f"the repository at {project_dir} is a shallow clone: its version would be computed from partial history",
                           "fetch the whole history and the tags: git fetch --unshallow --tags (in CI: fetch-depth: 0)")
    code, tags = _git("tag", "--list", cwd=project_dir)
    if code != 0 or tags or not origin_url(project_dir):
        return
    try:  # a remote that cannot be asked (offline, needs credentials) is not a reason to refuse
        proc = runner.run(["git", "ls-remote", "--tags", "origin"], cwd=project_dir, show=False, timeout=20,
                          env=runner.child_env({"GIT_TERMINAL_PROMPT": "0"}))
    except CiKitError:  # TimedOut included
        return
    if proc.returncode == 0 and proc.stdout.strip():
        raise ProjectError(f"origin has tags but the repository at {project_dir} has none: the version would ignore them",
                           "fetch them: git fetch --tags (Jenkins: a checkout that fetches tags; Actions: fetch-depth: 0)")


def resolve_commit(project_dir: Path, ref: str) -> str:
    code, sha = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=project_dir)
    if code != 0 or not sha:
        raise ProjectError(f"commit {ref} is not in the repository at {project_dir}",
                           "fetch it first (in CI: a full-depth checkout, e.g. fetch-depth: 0)")
    return sha


def check_version_matches(version: str, commit: str) -> None:
    """A setuptools_scm-style local part (+g<sha>) must name the commit under test."""
    m = re.search(r"(?:^|[+.])g([0-9a-f]{7,40})(?:\.|$)", version.partition("+")[2])
    if m and not commit.startswith(m.group(1)):
        raise ProjectError(f"version {version} was built from commit {m.group(1)}, not {commit[:12]}",
                           "pass the commit job 1 printed: --commit SHA")


def fresh_clone(project_dir: Path, commit: str, dest: Path) -> Path:
    """A clone of the repository at `commit`, sharing objects (cheap, local, no network)."""
    top = require_project_top(project_dir)
    rel = project_dir.resolve().relative_to(top)
    code, out = _git("clone", "--quiet", "--no-checkout", "--shared", str(top), str(dest), cwd=project_dir)
    if code != 0:
        raise ProjectError(f"git clone of {top} failed: {out}", "check the repository")
    code, out = _git("-c", "advice.detachedHead=false", "checkout", "--quiet", commit, cwd=dest)
    if code != 0:
        raise ProjectError(f"cannot check out {commit} in a fresh clone: {out}", "fetch the commit first")
    return dest / rel


def require_project_top(project_dir: Path) -> Path:
    code, top = _git("rev-parse", "--show-toplevel", cwd=project_dir)
    if code != 0:
        raise ProjectError(f"{project_dir} is not inside a git repository", "cd into the repository")
    return Path(top)


def commit_epoch(project_dir: Path, commit: str) -> int | None:
    """The commit's time (seconds since 1970), or None when git does not know the commit."""
    code, out = _git("show", "-s", "--format=%ct", commit, cwd=project_dir)
    return int(out) if code == 0 and out.isdigit() else None


def commit_time_epoch(project_dir: Path, commit: str) -> int:
    """SOURCE_DATE_EPOCH for a build of commit: its time, else 1980-01-01 (zip's epoch)."""
    epoch = commit_epoch(project_dir, commit)
    return 315532800 if epoch is None else epoch


def origin_url(project_dir: Path) -> str:
    """The URL of the repository's `origin` remote, or "" when it has none."""
    code, out = _git("remote", "get-url", "origin", cwd=project_dir)
    return out if code == 0 else ""
