"""`ci-kit build`: sdist + wheel of a clean commit, checked, with a manifest.

The build runs with SOURCE_DATE_EPOCH set to the commit time so that rebuilding the same
commit gives the same bytes: re-running job 1 is then a no-op on the index instead of
a collision.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import shutil
import sys
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ci_kit import console, repo, runner, sandbox
from ci_kit.config import BuildSettings, under
from ci_kit.contract import BuildJson
from ci_kit.dists import sha256_of
from ci_kit.errors import BuildError, ProjectError

MANIFEST = "ci-kit-build.json"
# the most telling line of a backend failure; build's own closing line says only that the backend failed
BACKEND_ERROR = r"^(?!ERROR Backend subprocess exited).*(Error|error:|ERROR)"


@dataclass(frozen=True)
class BuiltFile:
    filename: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    commit: str
    files: list[BuiltFile]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def hashes(self) -> dict[str, str]:
        """filename -> sha256 of every built file."""
        return {f.filename: f.sha256 for f in self.files}

    def to_json(self) -> BuildJson:
        return {"name": self.name, "version": self.version, "requirement": self.requirement, "commit": self.commit,
                "files": [{"filename": f.filename, "sha256": f.sha256, "size": f.size} for f in self.files]}

    def check_files(self, dist_dir: Path) -> None:
        """Every file the manifest names is in dist_dir with the sha256 built: what is pushed,
        or tested from the folder (`ci-kit test --dist`), is what was built."""
        for f in self.files:
            path = dist_dir / f.filename
            actual = sha256_of(path) if path.is_file() else "missing"
            if actual != f.sha256:
                raise BuildError(f"{path} is {'missing' if actual == 'missing' else 'sha256 ' + actual}; the build manifest says {f.sha256}",
                                 "the dist folder changed after the build: run `ci-kit build` (or build-and-push) again")

    @classmethod
    def read(cls, dist_dir: Path) -> Manifest:
        path = dist_dir / MANIFEST
        try:
            data = json.loads(path.read_text())
            return cls(data["name"], data["version"], data["commit"], [BuiltFile(**f) for f in data["files"]])
        except FileNotFoundError:
            raise ProjectError(f"no build manifest at {path}", "run `ci-kit build` first") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ProjectError(f"{path} is not a ci-kit build manifest ({exc})", "run `ci-kit build` again") from None


def name_and_version(filenames: list[str]) -> tuple[str, str]:
    """Read name and version from the built files' names (PEP 427 / PEP 625), which every
    backend must get right, instead of asking a particular backend."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    found = set()
    for fn in filenames:
        name, version = (parse_wheel_filename(fn)[:2] if fn.endswith(".whl") else parse_sdist_filename(fn))
        found.add((str(name), str(version)))
    if len(found) != 1:
        raise BuildError(f"the build produced files of more than one release: {sorted(found)}", "check the build backend's configuration")
    return found.pop()


def reproducible_sdist(path: Path, epoch: int) -> None:
    """Rewrite an sdist with fixed timestamps and owners.

    Why by hand: setuptools writes file mtimes and the gzip time into sdists and ignores
    SOURCE_DATE_EPOCH there (wheels and hatchling/flit sdists honour it); no maintained
    library normalises a finished sdist. Contents and member order are untouched.
    """
    if not path.name.endswith(".tar.gz"):
        return
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(path, "r:gz") as src, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=epoch) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            member.mtime = epoch
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.pax_headers = {k: v for k, v in member.pax_headers.items() if k not in ("mtime", "atime", "ctime")}
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    tmp.replace(path)


def _installer_flags() -> list[str]:
    """Use uv to install the build dependencies when it is there: several times faster."""
    try:
        import uv  # noqa: F401  (the PyPI package that ships the uv binary)
        return ["--installer", "uv"]
    except ImportError:
        return ["--installer", "uv"] if shutil.which("uv") else []


def build(project: Path, cfg: BuildSettings, *, run: runner.Run = runner.run) -> Manifest:
    """sdist and wheel, each built from its own fresh clone of HEAD, at the same time.
    `run` starts the build backends (tests pass a stand-in; git still runs for real).

    Fresh clones: what is built is exactly what the commit holds, and the work tree gets
    no build/ or egg-info. Two builds side by side instead of build's sdist-then-wheel:
    about 1.2 s less per job 1 (benchmarks/RESULTS.md); the sdist is still proven to
    build a working wheel, because job 2 installs and tests it.
    """
    repo.require_project(project)
    repo.require_clean(project)
    repo.require_history(project)
    commit = repo.head_commit(project)
    epoch = repo.commit_time_epoch(project, commit)
    dist = under(project, cfg.dist_dir)
    console.step(f"build: sdist + wheel of {project.name} at {commit[:12]}")
    with runner.temp_dir("ci-kit-build-") as tmp_s, ThreadPoolExecutor(max_workers=3) as pool:
        checker = pool.submit(_import_twine_check)  # ~0.35 s of imports, hidden behind the builds
        built = _build_both(project, commit, epoch, Path(tmp_s), pool, run=run)
        name, version = name_and_version([p.name for p in built])
        if cfg.metadata_check != "off":
            _check_metadata(checker.result(), built, name, version, cfg.metadata_check)
        files = _store(built, dist)
    manifest = Manifest(name, version, commit, files)
    (dist / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    for f in files:
        console.step(f"build: {f.filename}  sha256 {f.sha256[:16]}…  {f.size} bytes")
    return manifest


def _build_both(project: Path, commit: str, epoch: int, tmp: Path, pool: ThreadPoolExecutor, *,
                run: runner.Run) -> list[Path]:
    """Run `python -m build --sdist` and `--wheel` side by side, each in its own clone and
    confined (the backend is the product's code); the built files, made reproducible."""
    out = tmp / "out"
    env = runner.child_env({"SOURCE_DATE_EPOCH": str(epoch)})
    sources = {kind: repo.fresh_clone(project, commit, tmp / kind) for kind in ("sdist", "wheel")}
    jobs = {kind: pool.submit(run, sandbox.confine([sys.executable, "-m", "build", f"--{kind}", *_installer_flags(),
                                                            "--outdir", str(out), str(src)]), cwd=src, env=env)
            for kind, src in sources.items()}
    for job in jobs.values():
        proc = job.result()
        if proc.returncode != 0:
            console.detail(_backend_excerpt(proc.stdout))
            raise BuildError(f"the build backend failed: {runner.telling_line(proc.stdout, BACKEND_ERROR, limit=300)}",
                             "the backend's output is above; `python -m build` in the project shows the same")
    for src in sources.values():
        try:
            repo.require_clean(src)
        except ProjectError as exc:
            raise ProjectError(f"the build changed tracked files: {exc.message.split('(', 1)[-1].rstrip(')')}",
                               "stop tracking build output (e.g. *.egg-info/) and add it to .gitignore") from None
    built = sorted(p for p in out.iterdir() if p.name.endswith((".whl", ".tar.gz"))) if out.is_dir() else []
    if not built:
        raise BuildError("the build produced no sdist or wheel", "check the build backend's configuration")
    for p in built:
        reproducible_sdist(p, epoch)
    return built


def _check_metadata(check: Callable[[list[Path], bool], tuple[bool, str]], built: list[Path], name: str, version: str,
                    mode: str) -> None:
    """twine check (--strict when mode is "strict"): a failure stops the build; what
    twine merely warns about is shown."""
    strict = mode == "strict"
    console.step(f"build: twine check{' --strict' if strict else ''} {' '.join(p.name for p in built)}")
    failed, report = check(built, strict)
    if failed:
        console.detail(report)
        raise BuildError(f"twine check{' --strict' if strict else ''} failed for {name} {version}",
                         "fix the package metadata (README, content type, classifiers) as twine says above"
                         + ("; metadata-check = \"warn\" lets what is merely missing through" if strict else ""))
    if "with warnings" in report:  # twine's words for what is missing but harmless
        for line in report.splitlines():
            if line.strip() and not line.startswith("Checking "):
                console.step(f"build: metadata: {line.strip()} (metadata-check = \"{mode}\")")


def _store(built: list[Path], dist: Path) -> list[BuiltFile]:
    """Move the built files into the dist folder, with their sha256 and size."""
    dist.mkdir(parents=True, exist_ok=True)
    files = []
    for p in built:
        target = dist / p.name
        shutil.move(str(p), target)
        files.append(BuiltFile(p.name, sha256_of(target), target.stat().st_size))
    return files


def _import_twine_check() -> Callable[[list[Path], bool], tuple[bool, str]]:
    """twine's own `check`, run in this process (a second interpreter costs ~0.7 s)."""
    from twine.commands.check import check

    def run(files: list[Path], strict: bool) -> tuple[bool, str]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            failed = check([str(f) for f in files], strict=strict)
        return failed, buf.getvalue()

    return run


def _backend_excerpt(output: str, keep: int = 40) -> str:
    """The backend's own messages without Python's stack frames (they point into
    pyproject_hooks, not the user's project); the exception line itself is kept."""
    lines, in_tb = [], False
    for line in output.splitlines():
        if line.strip().startswith("Traceback (most recent call last)"):
            in_tb = True
            continue
        if in_tb and (line.startswith("  ") or not line.strip()):
            continue
        in_tb = False
        lines.append(line)
    return "\n".join(lines[-keep:])
