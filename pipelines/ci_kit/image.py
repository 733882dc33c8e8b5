"""`ci-kit image NAME==VERSION`: a pinned Docker image of a promoted release.

What it guarantees (docs/architecture.md, issue 3):

- Only promoted bytes: the release is taken from the stable or testing index; one that is
  only on the unstable index is refused unless `--from-unstable` (recorded in a label).
- Nothing is resolved inside the build: the release and its dependencies are locked from
  that index with `uv pip compile --generate-hashes` (the lock is kept as an artifact,
  with a CycloneDX SBOM beside it); the wheels are fetched and hash-checked before the
  build, and the image installs them with pip `--no-index --no-deps --require-hashes`.
  The product's line in the lock carries only the sha256 of its wheel on the index.
- The base is pinned by digest; a tag is refused unless `--allow-unpinned-base`, and even
  then it is resolved to its digest, which the image's FROM and labels use.
- Multi-stage, non-root, bytecode compiled, layers ordered so that a new version with the
  same dependencies rebuilds only the last small layer (pipelines/ci_kit/dockerfile.py).
- Built images are smoke-tested (a built-in import check, then `--smoke CMD`) before
  anything is pushed; any failure pushes nothing.

Every failure of the engine, the registry, the base, the lock, the audit or the smoke test
is an ImageError (exit 11) with one line and a hint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_kit import __version__, console, dockerfile, evidence, runner
from ci_kit.errors import ImageError, NotFound, TimedOut, UsageError
from ci_kit.release import Spec

if TYPE_CHECKING:
    from ci_kit.config import Settings
    from ci_kit.index import Index, Release, ReleaseFile

ARTIFACTS_DIR = "ci-kit-image"
_DIGEST_REF = re.compile(r"^(?P<name>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")
_TAG_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


# -- options --------------------------------------------------------------------------------

@dataclass
class Options:
    push: str | None = None          # REGISTRY/REPO, or None: build and smoke only
    tags: list[str] = field(default_factory=list)  # moving tags besides VERSION
    from_unstable: bool = False
    allow_unpinned_base: bool = False
    smoke: str = ""
    base: str = ""
    entrypoint: str = ""
    commit: str = ""
    artifacts_dir: str = ""
    audit: bool = False
    no_cache: bool = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The image step's own flags (cli.py may call this on its `image` subparser, so that
    `ci-kit image --help` lists them; otherwise they are parsed here from args.extra)."""
    p.add_argument("--push", nargs="?", const="", default=None, metavar="REGISTRY/REPO",
                   help="push tags VERSION and the moving tags, print the digest (default repository: image-repository)")
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="a moving tag pushed besides VERSION (repeatable; adds to image-tags)")
    p.add_argument("--from-unstable", action="store_true", help="allow a release that is not promoted (recorded in the labels)")
    p.add_argument("--allow-unpinned-base", action="store_true", help="accept a base given by tag (resolved to its digest at build time)")
    p.add_argument("--smoke", metavar="CMD", help="shell command run inside the built image before any push (overrides image-smoke)")
    p.add_argument("--commit", metavar="SHA", help="commit of the release (default: read from its test results on the index)")
    p.add_argument("--artifacts-dir", metavar="DIR", help=f"where the lock, SBOM and Dockerfile go (default: {ARTIFACTS_DIR}/NAME-VERSION)")
    p.add_argument("--audit", action="store_true", help="pip-audit the lock before building; fail on a finding or when the service is out of reach")
    p.add_argument("--no-cache", action="store_true", help="build without the engine's layer cache")


def parse_options(args: argparse.Namespace, settings: Settings) -> Options:
    if hasattr(args, "from_unstable"):  # cli.py added our flags to its subparser
        ns = args
    else:
        p = argparse.ArgumentParser(prog="ci-kit image", add_help=False)
        add_arguments(p)
        extra = list(getattr(args, "extra", None) or [])
        if "-h" in extra or "--help" in extra:
            p.print_help(sys.stderr)
            raise SystemExit(0)
        ns, unknown = p.parse_known_args(extra)
        if unknown:
            raise UsageError(f"ci-kit image: unrecognized arguments: {' '.join(unknown)}",
                             "ci-kit image NAME==VERSION [--push REGISTRY/REPO] [--tag T] [--smoke CMD] [--from-unstable] "
                             "[--allow-unpinned-base] [--commit SHA] [--audit] [--artifacts-dir DIR] [--json]; "
                             "base, entry point, smoke, repository and tags also come from image-* settings (--image-base REF ...)")
    push = ns.push
    if push == "":
        push = settings.image_repository
        if not push:
            raise UsageError("--push without a repository and no image-repository configured",
                             "pass --push REGISTRY/REPO or set image-repository in [tool.ci-kit]")
    return Options(push=push, tags=[*settings.image_tags, *ns.tag], from_unstable=ns.from_unstable,
                   allow_unpinned_base=ns.allow_unpinned_base, smoke=ns.smoke if ns.smoke is not None else settings.image_smoke,
                   base=settings.image_base, entrypoint=settings.image_entrypoint,
                   commit=ns.commit or "", artifacts_dir=ns.artifacts_dir or "", audit=ns.audit, no_cache=ns.no_cache)


# -- result ---------------------------------------------------------------------------------

@dataclass
class ImageResult:
    requirement: str
    image: str          # local reference (tag) of the built image
    image_id: str
    index: str
    promoted: bool
    base: str           # digest reference used in FROM
    lock: str
    lock_sha256: str
    sbom: str
    dockerfile: str
    wheel: str
    wheel_sha256: str
    labels: dict[str, str]
    layers: list[str]
    repository: str = ""
    tags: list[str] = field(default_factory=list)
    digest: str = ""
    pushed: list[str] = field(default_factory=list)
    audit: dict[str, Any] | None = None
    dependencies_reused: bool = False  # the locked dependency wheels came from ci-kit's cache

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else self.image

    def outputs(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "image": self.image, "image_id": self.image_id,
                "index": self.index, "promoted": self.promoted, "base": self.base,
                "lock": self.lock, "lock_sha256": self.lock_sha256, "sbom": self.sbom, "dockerfile": self.dockerfile,
                "wheel": self.wheel, "wheel_sha256": self.wheel_sha256, "labels": self.labels, "layers": self.layers,
                "repository": self.repository, "tags": self.tags, "digest": self.digest, "pushed": self.pushed,
                "reference": self.reference, "audit": self.audit, "dependencies_reused": self.dependencies_reused}


# -- the engine -----------------------------------------------------------------------------

def docker_bin() -> str:
    found = shutil.which("docker")
    if not found:
        raise ImageError("the docker command is not installed",
                         "install Docker (on Debian: scripts/start-docker installs docker.io and starts the engine)")
    return found


def _docker(*args: str, timeout: float | None = None, show: bool = True) -> Any:
    try:
        return runner.run([docker_bin(), *args], show=show, timeout=timeout)
    except TimedOut:
        raise ImageError(f"docker {args[0]} did not finish within {timeout:.0f}s", "check the engine (docker info)") from None


def _last_line(output: str) -> str:
    return runner.telling_line(output, r"(?i)error|denied|refused|not found|unknown|failed|no such|manifest",
                               skip=r"^(DEPRECATED| {12})")


def require_engine() -> str:
    proc = _docker("version", "--format", "{{.Server.Version}}", show=False, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise ImageError(f"the Docker engine at {where} is not running or not reachable: {_last_line(proc.stdout)}",
                         "start it (scripts/start-docker here) or set DOCKER_HOST")
    return proc.stdout.strip().splitlines()[-1]


def registry_of(repository: str) -> str:
    first = repository.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") and "/" in repository else "docker.io"


def require_registry(repository: str) -> None:
    """Fail before building when the registry does not answer at all."""
    if not re.match(r"^[a-z0-9]+(?:[._:-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+$", repository):
        raise UsageError(f"--push {repository!r} is not a REGISTRY/REPO name (lower case, e.g. 127.0.0.1:5000/team/churn-model)",
                         "name the registry and the repository, without a tag")
    registry = registry_of(repository)
    if registry == "docker.io":
        return  # docker's own credentials and endpoints; nothing to probe here
    problems = []
    for scheme in ("https", "http"):
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{scheme}://{registry}/v2/", timeout=10):
                return
        except urllib.error.HTTPError:
            return  # it answered (401 asks for a login: docker has it or will say so)
        except (urllib.error.URLError, OSError) as exc:
            problems.append(f"{scheme}: {getattr(exc, 'reason', exc)}")
    raise ImageError(f"the registry {registry} is not reachable ({'; '.join(map(str, problems))}); nothing was built or pushed",
                     "start it (scripts/start-docker starts one on 127.0.0.1:5000) or fix --push REGISTRY/REPO")


@dataclass(frozen=True)
class Base:
    given: str      # as configured
    name: str       # repository part (no tag, no digest)
    digest: str     # sha256:...
    pinned: bool    # given by digest

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"


def resolve_base(given: str, allow_unpinned: bool) -> Base:
    if not given:
        raise UsageError("no base image configured",
                         "set image-base = \"REGISTRY/REPO@sha256:...\" in [tool.ci-kit] or pass --image-base "
                         "(scripts/make-base-image makes one here and prints its reference)")
    m = _DIGEST_REF.match(given)
    if m:
        name = m.group("name").rsplit(":", 1)[0] if ":" in m.group("name").rsplit("/", 1)[-1] else m.group("name")
        base = Base(given, name, m.group("digest"), True)
        if _docker("image", "inspect", "--format", "{{.Id}}", base.ref, show=False).returncode != 0:
            proc = _docker("pull", "--quiet", base.ref, timeout=900)
            if proc.returncode != 0:
                raise ImageError(f"base image {base.ref} not found: {_last_line(proc.stdout)}",
                                 "check image-base (scripts/make-base-image prints a current reference) and the registry")
        return base
    if "@" in given:
        raise UsageError(f"base image {given!r}: only sha256 digests are accepted after '@'", "use REPO@sha256:<64 hex digits>")
    # A tag: find what it points at now.
    proc = _docker("pull", "--quiet", given, timeout=900)
    if proc.returncode != 0:
        raise ImageError(f"base image {given} not found: {_last_line(proc.stdout)}",
                         "check image-base and the registry (scripts/make-base-image pushes one to 127.0.0.1:5000)")
    insp = _docker("image", "inspect", "--format", "{{json .RepoDigests}}", given, show=False)
    name = given.rsplit(":", 1)[0] if ":" in given.rsplit("/", 1)[-1] else given
    digests = [d for d in json.loads(insp.stdout or "[]") or [] if d.startswith(name + "@")]
    resolved = digests[0].split("@", 1)[1] if digests else ""
    if not allow_unpinned:
        now = f" (it points at {name}@{resolved} now)" if resolved else ""
        raise ImageError(f"base image {given} is not pinned by digest{now}",
                         f"set image-base to {name}@{resolved or 'sha256:...'} so every build starts from the same bytes, "
                         "or pass --allow-unpinned-base to resolve the tag at build time")
    if not resolved:
        raise ImageError(f"base image {given} has no registry digest (a local-only image cannot be pinned)",
                         "push it to a registry first (scripts/make-base-image does) and use REPO@sha256:...")
    console.step(f"image: base {given} resolved to {name}@{resolved} (unpinned: --allow-unpinned-base)")
    return Base(given, name, resolved, False)


def cache_dir(*parts: str) -> Path:
    """ci-kit's cache on this machine (XDG_CACHE_HOME or ~/.cache): only content-addressed
    entries, each checked again on use, so a stale or damaged entry is never trusted."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ci-kit"
    try:
        path = root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home (some CI runners): a cache in the temporary directory
        path = Path(tempfile.gettempdir(), f"ci-kit-cache-{os.getuid()}").joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
    return path


def base_facts(base: Base) -> dict[str, str]:
    """Python version, platform and libc of the base, read by running it once per digest:
    an image digest names fixed bytes, so what it says about itself never changes."""
    cached = cache_dir("bases") / (base.digest.replace(":", "-") + ".json")
    try:
        facts = json.loads(cached.read_text())
        if facts.get("digest") == base.digest and facts.get("venv"):
            return facts
    except (OSError, ValueError):
        pass
    code = ("import json,os,platform,sys,sysconfig;"
            "print(json.dumps({'python':'%d.%d'%sys.version_info[:2],'full':platform.python_version(),"
            "'machine':platform.machine(),'libc':' '.join(platform.libc_ver()),"
            "'venv':__import__('importlib.util').util.find_spec('ensurepip') is not None}))")
    proc = _docker("run", "--rm", "--network", "host", "--entrypoint", "python3", base.ref, "-c", code, show=False, timeout=300)
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ImageError(f"base image {base.ref} has no working python3: {_last_line(proc.stdout)}",
                         "use a base with python3 and python3-venv (scripts/make-base-image makes one)") from None
    if not facts.get("venv"):
        raise ImageError(f"base image {base.ref} has python3 but not its venv module (ensurepip)",
                         "use a base with python3-venv (scripts/make-base-image makes one)")
    facts["digest"] = base.digest
    _write_atomically(cached, json.dumps(facts, sort_keys=True))
    return facts


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- the release ----------------------------------------------------------------------------

def find_release(settings: Settings, index: Index, spec: Spec, from_unstable: bool) -> tuple[Release, bool]:
    """(release, promoted): stable, then testing; unstable only when allowed."""
    for where in dict.fromkeys((settings.stable_index, settings.testing_index)):
        rel = index.release(where, spec.name, spec.version)
        if rel is not None and rel.files:
            return rel, True
    try:
        rel = index.release(settings.unstable_index, spec.name, spec.version)
    except NotFound:
        rel = None
    if rel is None or not rel.files:
        raise NotFound(f"{spec} is not on {settings.stable_index}, {settings.testing_index} or {settings.unstable_index}",
                       "check the name and version (job 1 prints NAME==VERSION) and the index settings")
    if not from_unstable:
        raise ImageError(f"{spec} is not promoted: it is only on {settings.unstable_index}; nothing was built",
                         "promote it first (ci-kit test-and-promote), or pass --from-unstable for a throwaway image (recorded in its labels)")
    console.step(f"image: {spec} is NOT promoted; building from {settings.unstable_index} (--from-unstable)")
    return rel, False


def pick_wheel(rel: Release, facts: dict[str, str]) -> ReleaseFile:
    wheels = [f for f in rel.files if f.kind == "wheel"]
    if not wheels:
        raise ImageError(f"{rel.name}=={rel.version} has no wheel on {rel.index}; the image installs wheels only",
                         "build a wheel in job 1 (ci-kit build makes sdist + wheel)")
    from packaging.utils import parse_wheel_filename

    py = "cp" + facts["python"].replace(".", "")
    def score(f: ReleaseFile) -> int:
        tags = parse_wheel_filename(f.basename)[3]
        best = 0
        for t in tags:
            if t.platform == "any":
                best = max(best, 1)
            elif t.interpreter in (py, "py3", f"py{facts['python'].replace('.', '')}") and facts["machine"] in t.platform and "linux" in t.platform:
                best = max(best, 2)
        return best
    ranked = sorted(wheels, key=score, reverse=True)
    if score(ranked[0]) == 0:
        raise ImageError(f"no wheel of {rel.name}=={rel.version} fits Python {facts['python']} on linux {facts['machine']}: "
                         + ", ".join(f.basename for f in wheels), "build a wheel for the base image's Python and platform")
    return ranked[0]


def source_url(rel: Release, project_dir: Path) -> str:
    md = rel.metadata
    urls = md.get("project_urls") or []
    if isinstance(urls, dict):
        urls = [f"{k}, {v}" for k, v in urls.items()]
    for label in ("source", "repository", "source code", "code", "homepage"):
        for item in urls:
            k, _, v = str(item).partition(",")
            if k.strip().lower() == label and v.strip():
                return v.strip()
    if md.get("home_page"):
        return str(md["home_page"])
    from ci_kit import repo

    return repo.origin_url(project_dir) if project_dir.is_dir() else ""


def created_time(project_dir: Path, commit: str) -> str:
    """The commit's time (UTC, RFC 3339), so rebuilding the same release gives the same label."""
    from datetime import datetime, timezone

    from ci_kit import repo

    epoch = repo.commit_epoch(project_dir, commit) if commit and project_dir.is_dir() else None
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        epoch = int(os.environ["SOURCE_DATE_EPOCH"])
    return "" if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def console_scripts(wheel_path: Path) -> list[str]:
    """The wheel's console scripts, read by importlib.metadata straight from the zip."""
    from importlib.metadata import PathDistribution

    with zipfile.ZipFile(wheel_path) as zf:
        info = next((n.split("/", 1)[0] for n in zf.namelist() if n.split("/", 1)[0].endswith(".dist-info")), "")
        if not info:
            return []
        dist = PathDistribution(zipfile.Path(zf, info + "/"))  # type: ignore[arg-type]
        return [ep.name for ep in dist.entry_points.select(group="console_scripts")]


def entrypoint_argv(configured: str, scripts: list[str], name: str) -> list[str]:
    if configured:
        words = shlex.split(configured)
        if words[:1] == ["-m"] and len(words) >= 2:
            return [f"{dockerfile.VENV}/bin/python", *words]
        if words[0] not in scripts and not words[0].startswith("/"):
            raise UsageError(f"image-entrypoint {words[0]!r} is not a console script of {name} (it has: {', '.join(scripts) or 'none'})",
                             "name one of them, or '-m module'")
        return [words[0] if words[0].startswith("/") else f"{dockerfile.APP}/bin/{words[0]}", *words[1:]]
    if len(scripts) == 1:
        return [f"{dockerfile.APP}/bin/{scripts[0]}"]
    return [f"{dockerfile.VENV}/bin/python"]


# -- the lock -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Locked:
    name: str       # canonical
    version: str
    hashes: tuple[str, ...]
    index: str = ""  # simple URL it was resolved from (uv's index annotation); not written to the lock

    def line(self) -> str:
        return " \\\n    ".join([f"{self.name}=={self.version}", *(f"--hash=sha256:{h}" for h in self.hashes)])


def parse_lock(text: str) -> list[Locked]:
    """uv's requirements output: NAME==VERSION with --hash options, '# from URL' after each."""
    from packaging.utils import canonicalize_name

    out: list[Locked] = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        m = re.match(r"^\s*#\s*from\s+(\S+)", raw)
        if m and out:
            out[-1] = Locked(out[-1].name, out[-1].version, out[-1].hashes, m.group(1))
            continue
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if not m:
            raise ImageError(f"unexpected line in the lock: {line[:120]}", "this is a bug in ci-kit; please report it")
        hashes = tuple(sorted(set(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))))
        out.append(Locked(str(canonicalize_name(m.group(1))), m.group(2), hashes))
    return sorted(out, key=lambda l: l.name)


def simple_url(settings: Settings, index_name: str) -> str:
    return f"{settings.index_url}/{index_name}/+simple/"


def lock(settings: Settings, spec: Spec, rel: Release, wheel: ReleaseFile, facts: dict[str, str], work: Path) -> list[Locked]:
    """Resolve the release and its dependencies with hashes, product from its index first."""
    from ci_kit import envs

    src = simple_url(settings, rel.index)
    dep = envs.dependency_index_name(settings.dependency_index_url)
    infile, outfile = work / "requirements.in", work / "uv-compile.txt"
    infile.write_text(f"{spec.name}=={spec.version}\n")
    platform = f"{facts['machine']}-unknown-linux-gnu" if facts.get("machine") in ("x86_64", "aarch64") else "linux"
    # uv prefers --extra-index-url over the dependency index, and with its default
    # first-index strategy takes a package only from the first index that has it: the
    # release (and any dependency the devpi index serves, e.g. through a root/pypi base)
    # come from there. The dependency index follows the same rule as `ci-kit test`.
    argv = [envs.uv_bin(), "pip", "compile", "--quiet", "--generate-hashes", "--no-header", "--no-annotate", "--emit-index-annotation",
            "--only-binary", ":all:", "--python-version", facts["python"], "--python-platform", platform,
            *envs.dependency_index_args(settings.dependency_index_url), "--extra-index-url", src, "--refresh-package", spec.name,
            "--output-file", str(outfile), str(infile)]
    proc = runner.run(argv, env=envs.uv_env(), timeout=900)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"cannot resolve the dependencies of {spec} from {rel.index}: {_uv_reason(proc.stdout)}",
                         f"every dependency needs a wheel for Python {facts['python']} on linux {facts['machine']} "
                         f"on {rel.index} or {dep} (dependency-index-url)")
    locked = parse_lock(outfile.read_text())
    me = next((l for l in locked if l.name == spec.name), None)
    if me is None or me.version != spec.version:
        raise ImageError(f"the lock does not pin {spec} (got {me.name + '==' + me.version if me else 'nothing'})",
                         "this is a bug in ci-kit or the index; please report it")
    if wheel.sha256 not in me.hashes:
        raise ImageError(f"{rel.index} serves {wheel.basename} with hashes {', '.join(h[:12] for h in me.hashes)} on its "
                         f"simple page but {wheel.sha256[:12]} in its JSON API", "check the devpi-server")
    return [Locked(l.name, l.version, (wheel.sha256,), l.index) if l.name == spec.name else l for l in locked]


def _uv_reason(output: str) -> str:
    return runner.telling_line(output, r"^(×|error:)", skip=r"^\s*\$ ", follow=3)


def write_lock(path: Path, locked: list[Locked], *, spec: Spec, rel: Release, base: Base, python: str) -> str:
    from ci_kit.dists import sha256_of

    header = (f"# Hash-locked requirements of {spec} for its image, made by ci-kit image.\n"
              f"# Source index: {rel.index}. Target: Python {python} on {base.ref}.\n"
              f"# {spec.name} is pinned to the sha256 of its wheel on the index; install with\n"
              f"#   pip install --no-deps --require-hashes -r {path.name}\n")
    path.write_text(header + "".join(l.line() + "\n" for l in locked))
    return sha256_of(path)


# -- fetching the files, outside the build --------------------------------------------------

def ca_bundle() -> str:
    """This machine's CA bundle (a TLS proxy in front of PyPI may need it), or an empty string."""
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        v = os.environ.get(var, "")
        if v and os.path.isfile(v):
            return v
    for cand in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if os.path.isfile(cand):
            return cand
    return ""


def fetch_dependencies(settings: Settings, deps: list[Locked], base: Base, ctx: Path) -> bool:
    """pip download (in a throwaway container of the base itself, so pip picks the wheels
    that fit the image's Python) of exactly the locked files, checked against their hashes.

    A new version with the same dependencies has the same dependency lock: the wheels pip
    chose for it on this base are kept, keyed by the base's digest and the lock's text, and
    used again after every file's sha256 is checked against the lock (pip checks them once
    more inside the build). That saves a container and an index round trip per locked file.
    Returns True when the wheels came from that cache."""
    dest = ctx / "wheels" / "deps"
    dest.mkdir(parents=True, exist_ok=True)
    if not deps:
        return False
    text = "".join(l.line() + "\n" for l in deps)
    (ctx / "deps.lock").write_text(text)
    kept = cache_dir("image-wheels") / hashlib.sha256(f"{base.digest}\n{text}".encode()).hexdigest()
    if _reuse_wheels(kept, deps, dest):
        console.step(f"image: {len(deps)} locked dependency wheels reused from {kept} (sha256 checked against the lock)")
        os.utime(kept)  # most recently used: the last to be pruned
        return True
    cache = cache_dir("pip-download")
    # only the indexes the lock says the files come from (a pip that asks an index it
    # cannot reach retries for a long time before it gives up)
    missing = [l.name for l in deps if not l.index]
    if missing:  # uv names the index of every file it locks (--emit-index-annotation)
        raise ImageError(f"the lock does not say which index {', '.join(missing)} came from", "this is a bug in ci-kit; please report it")
    urls = list(dict.fromkeys(l.index for l in deps))
    where = ["--index-url", urls[0], *(a for u in urls[1:] for a in ("--extra-index-url", u))]
    mounts = ["-v", f"{ctx}:/ctx", "-v", f"{cache}:/cache"]
    cert: list[str] = []
    ca = ca_bundle()
    if ca and any(u.startswith("https:") for u in urls):
        mounts += ["-v", f"{os.path.realpath(ca)}:/ci-kit-ca.crt:ro"]
        cert = ["--cert", "/ci-kit-ca.crt"]
    envs: list[str] = []
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        if os.environ.get(var):
            envs += ["-e", var]
    script = ('set -e; pip=$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | head -1); '
              'if [ -n "$pip" ]; then exec python3 "$pip/pip" "$@"; fi; '
              'python3 -m venv /tmp/p >/dev/null; exec /tmp/p/bin/pip "$@"')
    argv = ["run", "--rm", "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp", *envs, *mounts,
            "--entrypoint", "/bin/sh", base.ref, "-c", script, "pip",
            "download", "--disable-pip-version-check", "--no-input", "--quiet", "--no-deps", "--require-hashes",
            "--only-binary=:all:", "--cache-dir", "/cache", *where, *cert,
            "--dest", "/ctx/wheels/deps", "-r", "/ctx/deps.lock"]
    proc = _docker(*argv, timeout=1800)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"fetching the locked dependencies failed: {_last_line(proc.stdout)}",
                         f"every locked file must be on {' or '.join(urls)} as a wheel for the base's Python")
    if _check_wheels(dest, deps) is None:
        raise ImageError("pip download left files that do not match the lock", "this is a bug in ci-kit; please report it")
    _keep_wheels(dest, kept)
    _prune(kept.parent, KEPT_WHEEL_SETS)
    return False


def _check_wheels(folder: Path, deps: list[Locked]) -> list[Path] | None:
    """The folder's wheels when there is exactly one per locked dependency, each with a
    sha256 the lock lists for that dependency; None otherwise."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    from ci_kit.dists import sha256_of

    by_hash = {h: l for l in deps for h in l.hashes}
    files = sorted(folder.glob("*.whl"))
    seen: set[str] = set()
    for f in files:
        try:
            name = str(canonicalize_name(parse_wheel_filename(f.name)[0]))
        except ValueError:
            return None
        owner = by_hash.get(sha256_of(f))
        if owner is None or owner.name != name or name in seen:
            return None
        seen.add(name)
    return files if seen == {l.name for l in deps} else None


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _reuse_wheels(kept: Path, deps: list[Locked], dest: Path) -> bool:
    if not (kept / "complete").is_file():
        return False
    files = _check_wheels(kept, deps)
    if files is None:
        console.step(f"image: the kept wheels in {kept} do not match the lock; fetching them again")
        shutil.rmtree(kept, ignore_errors=True)
        return False
    for f in files:
        _link_or_copy(f, dest / f.name)
    return True


KEPT_WHEEL_SETS = 8  # dependency sets kept per machine (a data product's can be hundreds of MB)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the `keep` most recently used sets."""
    sets = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.endswith(".tmp")),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for old in sets[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _keep_wheels(fetched: Path, kept: Path) -> None:
    tmp = kept.with_name(f"{kept.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in fetched.glob("*.whl"):
        _link_or_copy(f, tmp / f.name)
    (tmp / "complete").write_text("")
    try:
        os.rename(tmp, kept)
    except OSError:  # another ci-kit kept the same set first (or a damaged set is still there)
        shutil.rmtree(tmp, ignore_errors=True)


# -- the artifacts beside the lock ----------------------------------------------------------

def _tool(module: str, script: str) -> list[str]:
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    found = shutil.which(script) or (str(Path(sys.executable).parent / script) if (Path(sys.executable).parent / script).exists() else "")
    if not found:
        raise ImageError(f"{script} is not installed", "pip install 'ci-kit[image]'")
    return [found]


def sbom(locked: list[Locked], spec: Spec, image: str, out: Path) -> None:
    """A CycloneDX SBOM of the image's Python environment: one component per locked file,
    with its purl and the sha256 the lock pins. Made in-process with cyclonedx-python-lib
    (the library under cyclonedx-bom): the `cyclonedx-py requirements` command reads the
    same lock but spends about 2 s starting up, which a rebuild for a new version cannot
    afford. Reproducible: no serial number, no timestamp."""
    import warnings

    try:
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output import make_outputter
        from cyclonedx.schema import OutputFormat, SchemaVersion
        from packageurl import PackageURL
    except ImportError:
        raise ImageError("cyclonedx-python-lib is not installed (the SBOM needs it)", "pip install 'ci-kit[image]'") from None
    bom = Bom()
    root = Component(type=ComponentType.CONTAINER, name=image, version=spec.version, bom_ref=f"image:{image}")
    bom.metadata.component = root
    bom.metadata.properties.add(Property(name="cdx:reproducible", value="true"))
    parts = []
    for l in locked:
        parts.append(Component(type=ComponentType.LIBRARY, name=l.name, version=l.version, bom_ref=f"{l.name}=={l.version}",
                               purl=PackageURL("pypi", name=l.name, version=l.version),
                               hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in l.hashes]))
        bom.components.add(parts[-1])
    bom.register_dependency(root, parts)
    bom.serial_number = None  # type: ignore[assignment]
    bom.metadata.timestamp = None  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string(indent=2)
    _write_atomically(out, text + "\n")


VULN_SERVICE = "https://pypi.org/pypi"  # pip-audit's default service: PyPI's JSON API


def _probe_vuln_service() -> str:
    """'' when PyPI's JSON API answers for a project it certainly has, else why not."""
    try:
        with urllib.request.urlopen(f"{VULN_SERVICE}/pip/json", timeout=20) as resp:
            return "" if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} for {VULN_SERVICE}/pip/json"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def audit(lock_path: Path, out: Path, own: str) -> dict[str, Any]:
    """pip-audit of the lock against PyPI's vulnerability data. Refuses on a finding, and says
    plainly when the service cannot be reached: an audit that did not run is not a pass."""
    unreachable = ("audit: the vulnerability service ({}) cannot be reached: {}; the audit did not run "
                   "and nothing was built or pushed")
    hint = "run without --audit where the service is out of reach, or allow access to pypi.org"
    why = _probe_vuln_service()
    if why:
        raise ImageError(unreachable.format(f"PyPI's JSON API at {VULN_SERVICE}, used by pip-audit", why), hint)
    proc = runner.run([*_tool("pip_audit", "pip-audit"), "--requirement", str(lock_path), "--require-hashes", "--no-deps",
                       "--disable-pip", "--progress-spinner", "off", "--format", "json", "--output", str(out)], timeout=900)
    try:
        data = json.loads(out.read_text())
    except (OSError, ValueError):
        console.detail(proc.stdout)
        raise ImageError(f"audit: pip-audit failed: {_last_line(proc.stdout)}", "see pip-audit's output above") from None
    deps = data.get("dependencies", [])
    found = [f"{d['name']}=={d['version']} ({', '.join(v['id'] for v in d.get('vulns', []))})" for d in deps if d.get("vulns")]
    skipped = [d["name"] for d in deps if d.get("skip_reason")]
    others = [d["name"] for d in deps if d["name"] != own]
    if others and set(others) <= set(skipped):
        raise ImageError(f"audit: the vulnerability service (PyPI's JSON API, used by pip-audit) could not be used: it "
                         f"answered for none of the locked dependencies ({', '.join(others)}); the audit did not run "
                         "and nothing was built or pushed", hint)
    if found:
        raise ImageError(f"audit: {len(found)} dependencies with known vulnerabilities: {'; '.join(found)}",
                         f"upgrade them in the product and release again (report: {out})")
    console.step(f"audit: no known vulnerabilities in {len(deps) - len(skipped)} audited dependencies"
                 + (f" (not on PyPI, not audited: {', '.join(skipped)})" if skipped else ""))
    return {"report": str(out), "vulnerable": found, "skipped": skipped}


# -- build, smoke, push ---------------------------------------------------------------------

def docker_tag(version: str) -> str:
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version)
    if not _TAG_OK.match(tag):
        raise UsageError(f"version {version!r} cannot be a Docker tag", "use a PEP 440 version")
    return tag


def local_name(name: str) -> str:
    return f"ci-kit/{name}"


def build(ctx: Path, tag: str, no_cache: bool) -> tuple[str, list[str]]:
    iid = ctx / "image.id"
    argv = ["build", "--network", "host", "--iidfile", str(iid), "--tag", tag, "--file", str(ctx / "Dockerfile")]
    if no_cache:
        argv.append("--no-cache")
    proc = _docker(*argv, str(ctx), timeout=3600)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"docker build failed: {_last_line(proc.stdout)}", "the build's output is above; nothing was pushed")
    image_id = iid.read_text().strip()
    layers = json.loads(_docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image_id, show=False).stdout or "[]")
    return image_id, layers


_IMPORT_OK = "ci-kit: import check passed"


def smoke(image_id: str, spec: Spec, command: str) -> None:
    """The built-in import check, then the configured command, in one container (a second
    `docker run` would cost a container start for nothing): the check prints a marker
    line before the command runs, so a failure is put down to the right one."""
    check = ("import importlib.metadata as m,json,sys;"
             f"v=m.version({spec.name!r});"
             f"r=json.load(open({dockerfile.RECORD!r}));"
             f"sys.exit(0 if v=={spec.version!r} and r['requirement']=={str(spec)!r} else 'installed '+v)")
    script = f'{dockerfile.VENV}/bin/python -c "$1" || exit 1; echo "{_IMPORT_OK}"; [ -z "$2" ] || exec /bin/sh -c "$2"'
    if command:
        console.step(f"image: smoke test: {command}")
    proc = _docker("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", image_id, "-c", script, "smoke", check, command,
                   timeout=1800)
    if proc.returncode == 0:
        return
    console.detail(proc.stdout)
    if _IMPORT_OK not in proc.stdout:
        raise ImageError(f"smoke test failed: {spec} is not importable as installed in the image: {_last_line(proc.stdout)}",
                         "nothing was pushed; see the output above")
    raise ImageError(f"smoke test failed (exit {proc.returncode}): {command}: {_last_line(proc.stdout)}",
                     "nothing was pushed; the command's output is above")


@dataclass(frozen=True)
class RegistryLogin:
    """registry-user and its password (CI_KIT_REGISTRY_PASSWORD[_FILE]): handed to the
    engine per request through the Docker SDK, so unlike `docker login` nothing is written
    to a docker config file, and the password is never on a command line."""
    registry: str
    username: str
    password: str

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "serveraddress": self.registry}


def registry_login(settings: Settings, repository: str) -> RegistryLogin | None:
    password = settings.registry_password
    if not settings.registry_user and not password:
        return None  # docker's own login (docker login, credential helpers) applies
    if not (settings.registry_user and password):
        raise UsageError("a registry login needs both registry-user and a password",
                         "set CI_KIT_REGISTRY_USER and CI_KIT_REGISTRY_PASSWORD (or CI_KIT_REGISTRY_PASSWORD_FILE), or neither")
    console.add_secret(password)
    return RegistryLogin(registry_of(repository), settings.registry_user, password)


def _docker_api() -> Any:
    try:
        import docker  # the Docker SDK for Python: only for logins, which the CLI would write to a file
    except ImportError:
        raise ImageError("the Docker SDK for Python is not installed (a registry login needs it)",
                         "pip install 'ci-kit[image]'") from None
    try:
        return docker.from_env().api
    except docker.errors.DockerException as exc:
        raise ImageError(f"cannot talk to the Docker engine: {exc}", "start it (scripts/start-docker here) or set DOCKER_HOST") from None


def check_login(login: RegistryLogin) -> None:
    """Ask the registry (through the engine) before anything is built, so a wrong password
    costs no build."""
    import docker
    import requests

    api = _docker_api()
    try:
        api.login(username=login.username, password=login.password, registry=login.registry, reauth=True)
    except docker.errors.APIError as exc:
        raise ImageError(f"the registry {login.registry} refused the login of {login.username!r}: "
                         f"{console.mask(str(exc.explanation or exc))[:300]}; nothing was built or pushed",
                         "check registry-user and CI_KIT_REGISTRY_PASSWORD (or CI_KIT_REGISTRY_PASSWORD_FILE)") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise ImageError(f"cannot log in to {login.registry} through the Docker engine: {console.mask(str(exc))[:300]}; "
                         "nothing was built or pushed", "check the engine (docker info) and DOCKER_HOST") from None


def _push_with_login(ref: str, login: RegistryLogin) -> str:
    import docker
    import requests

    repository, tag = ref.rsplit(":", 1)
    console.step(f"$ docker push {ref}  (through the engine's API, as {login.username})")
    digest, hint = "", "check the registry and registry-user / CI_KIT_REGISTRY_PASSWORD"
    try:
        for event in _docker_api().push(repository, tag=tag, auth_config=login.auth_config(), stream=True, decode=True):
            if event.get("error"):
                raise ImageError(f"docker push {ref} failed: {console.mask(str(event['error']))[:300]}", hint)
            digest = (event.get("aux") or {}).get("Digest") or digest
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise ImageError(f"docker push {ref} failed: {console.mask(str(exc))[:300]}", hint) from None
    return digest


def push(image_id: str, repository: str, tags: list[str], login: RegistryLogin | None = None) -> tuple[str, list[str]]:
    digests: dict[str, str] = {}
    for tag in tags:
        ref = f"{repository}:{tag}"
        if _docker("tag", image_id, ref, show=False).returncode != 0:
            raise ImageError(f"cannot tag the image as {ref}", "check the repository name")
    for tag in tags:
        ref = f"{repository}:{tag}"
        if login is not None:
            digest = _push_with_login(ref, login)
        else:
            proc = _docker("push", ref, timeout=3600)
            if proc.returncode != 0:
                console.detail(proc.stdout)
                raise ImageError(f"docker push {ref} failed: {_last_line(proc.stdout)}",
                                 "check the registry and your login (docker login REGISTRY, or registry-user "
                                 "with CI_KIT_REGISTRY_PASSWORD)")
            m = re.search(r"digest: (sha256:[0-9a-f]{64})", proc.stdout)
            digest = m.group(1) if m else ""
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise ImageError(f"docker push {ref} gave no digest", "check the registry")
        digests[tag] = digest
    if len(set(digests.values())) != 1:
        raise ImageError(f"the tags were pushed with different digests: {digests}", "check the registry")
    return next(iter(digests.values())), [f"{repository}:{t}" for t in tags]


# -- the whole step -------------------------------------------------------------------------

def build_image(settings: Settings, spec: Spec, opts: Options, index: Index | None = None) -> ImageResult:
    from ci_kit.dists import sha256_of
    from ci_kit.index import Index

    t0 = time.monotonic()
    import importlib.util

    if importlib.util.find_spec("cyclonedx") is None:  # the SBOM is written beside the build: say so before it
        raise ImageError("cyclonedx-python-lib is not installed (the image's SBOM needs it); nothing was built",
                         "pip install 'ci-kit[image]'")
    require_engine()
    login = None
    if opts.push:
        require_registry(opts.push)
        login = registry_login(settings, opts.push)
        if login is not None:
            check_login(login)
    tags = [docker_tag(spec.version)] + [t for t in dict.fromkeys(opts.tags) if t != docker_tag(spec.version)]
    for t in tags:
        if not _TAG_OK.match(t):
            raise UsageError(f"{t!r} is not a valid Docker tag", "letters, digits, '_', '.', '-'; at most 128")
    if index is None:
        index = Index.from_settings(settings, login="when-asked")  # it only reads
    rel, promoted = find_release(settings, index, spec, opts.from_unstable)
    base = resolve_base(opts.base, opts.allow_unpinned_base)
    facts = base_facts(base)
    wheel = pick_wheel(rel, facts)
    console.step(f"image: {spec} from {rel.index}; wheel {wheel.basename} sha256 {wheel.sha256[:16]}…; "
                 f"base {base.ref} (Python {facts['full']}, {facts['machine']})")

    out_dir = Path(opts.artifacts_dir).expanduser() if opts.artifacts_dir else settings.path(ARTIFACTS_DIR) / f"{spec.name}-{spec.version}"
    if not out_dir.is_absolute():
        out_dir = settings.project_dir / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with runner.temp_dir("ci-kit-image-") as tmp:  # a killed run's folder is swept by the next
        work = Path(tmp)
        locked = lock(settings, spec, rel, wheel, facts, work)
        lock_path = out_dir / "requirements.lock"
        lock_sha = write_lock(lock_path, locked, spec=spec, rel=rel, base=base, python=facts["python"])
        deps = [l for l in locked if l.name != spec.name]
        console.step(f"image: locked {len(deps)} dependencies → {lock_path} (sha256 {lock_sha[:16]}…)")
        sbom_path = out_dir / "sbom.cdx.json"
        # The SBOM is written beside the fetch and the build and awaited before anything is
        # smoke-tested or pushed (a failed SBOM still stops the image).
        background = ThreadPoolExecutor(max_workers=1)
        sbom_job = background.submit(sbom, locked, spec, local_name(spec.name), sbom_path)
        background.shutdown(wait=False)
        audit_result = audit(lock_path, out_dir / "audit.json", spec.name) if opts.audit else None

        ctx = work / "context"
        (ctx / "app").mkdir(parents=True)
        deps_cached = fetch_dependencies(settings, deps, base, ctx)
        if not deps:
            (ctx / "deps.lock").write_text("")
        app_wheel = index.download(wheel, ctx / "app")
        if sha256_of(app_wheel) != wheel.sha256:  # index.download checks too; this is the image's guarantee
            raise ImageError(f"{wheel.basename}: downloaded bytes differ from the index's sha256", "retry; check the index")
        me = next(l for l in locked if l.name == spec.name)
        (ctx / "app" / "app.lock").write_text(me.line() + "\n")

        commit = opts.commit or evidence.commit_of(index, rel, settings.trusted)
        labels = {
            "org.opencontainers.image.title": spec.name,
            "org.opencontainers.image.description": str(rel.metadata.get("summary") or f"{spec} (ci-kit image)"),
            "org.opencontainers.image.version": spec.version,
            "org.opencontainers.image.revision": commit,
            "org.opencontainers.image.source": source_url(rel, settings.project_dir),
            "org.opencontainers.image.created": created_time(settings.project_dir, commit),
            "org.opencontainers.image.base.name": base.given if not base.pinned else base.name,
            "org.opencontainers.image.base.digest": base.digest,
            "org.ci-kit.version": __version__,
            "org.ci-kit.requirement": str(spec),
            "org.ci-kit.index": rel.index,
            "org.ci-kit.index-url": settings.index_url,
            "org.ci-kit.promoted": "true" if promoted else "false",
            "org.ci-kit.from-unstable": "false" if promoted else "true",
            "org.ci-kit.lock.sha256": lock_sha,
            "org.ci-kit.wheel": wheel.basename,
            "org.ci-kit.wheel.sha256": wheel.sha256,
            "org.ci-kit.base.pinned": "true" if base.pinned else "false",
        }
        labels = {k: v for k, v in labels.items() if v != ""}
        entry = entrypoint_argv(opts.entrypoint, console_scripts(app_wheel), spec.name)
        text = dockerfile.render(base=base.ref, requirement=str(spec), has_deps=bool(deps), entrypoint=entry, labels=labels)
        (ctx / "Dockerfile").write_text(text)
        (out_dir / "Dockerfile").write_text(text)

        local = f"{local_name(spec.name)}:{tags[0]}"
        console.step(f"image: docker build → {local}")
        image_id, layers = build(ctx, local, opts.no_cache)
        sbom_job.result()

    smoke(image_id, spec, opts.smoke)
    res = ImageResult(requirement=str(spec), image=local, image_id=image_id, index=rel.index, promoted=promoted,
                      base=base.ref, lock=str(lock_path), lock_sha256=lock_sha, sbom=str(sbom_path),
                      dockerfile=str(out_dir / "Dockerfile"), wheel=wheel.basename, wheel_sha256=wheel.sha256,
                      labels=labels, layers=layers, audit=audit_result, dependencies_reused=deps_cached)
    if opts.push:
        digest, pushed = push(image_id, opts.push, tags, login)
        res.repository, res.tags, res.digest, res.pushed = opts.push, tags, digest, pushed
        console.step(f"image: pushed {', '.join(pushed)} → {opts.push}@{digest}")
    (out_dir / "image.json").write_text(json.dumps(res.outputs(), indent=2, sort_keys=True) + "\n")
    console.step(f"image: {spec} done in {time.monotonic() - t0:.1f}s")
    return res


def _spec_from_args(args: argparse.Namespace, settings: Settings) -> Spec:
    from ci_kit.release import parse

    if getattr(args, "requirement", None):
        return parse(args.requirement)
    from ci_kit.build import Manifest

    m = Manifest.read(settings.path(settings.dist_dir))
    return parse(m.requirement)


def cli(args: argparse.Namespace, settings: Settings) -> int:
    """`ci-kit image`: called by pipelines/ci_kit/cli.py with the unparsed image flags in args.extra."""
    opts = parse_options(args, settings)
    spec = _spec_from_args(args, settings)
    res = build_image(settings, spec, opts)
    outputs = res.outputs()
    console.write_outputs(getattr(args, "output", None),
                          {k: outputs[k] for k in ("requirement", "image", "image_id", "digest", "reference", "repository",
                                                   "tags", "lock", "lock_sha256", "sbom", "base", "index")})
    console.write_summary(getattr(args, "summary", None),
                          f"### ci-kit image: `{res.requirement}`\n\n| | |\n|---|---|\n| image | `{res.reference}` |\n"
                          f"| digest | `{res.digest or '(not pushed)'}` |\n| base | `{res.base}` |\n"
                          f"| from index | `{res.index}` |\n| lock sha256 | `{res.lock_sha256}` |")
    if getattr(args, "json", False):
        console.out_json(outputs)
    else:
        console.out(res.reference)
    return 0


def build_image_for_run(settings: Settings, spec: Spec, index: Index | None = None) -> dict[str, Any]:
    """The image stage of `ci-kit run` (image = true): configuration only, no flags."""
    opts = Options(push=settings.image_repository or None, tags=list(settings.image_tags), smoke=settings.image_smoke,
                   base=settings.image_base, entrypoint=settings.image_entrypoint)
    return build_image(settings, spec, opts, index=index).outputs()
