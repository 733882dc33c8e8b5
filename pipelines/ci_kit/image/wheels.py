"""The locked dependencies' wheels, fetched outside the build, checked, kept and reused.

pip downloads them in a throwaway container of the base itself, so it picks the wheels
that fit the image's Python, with `--require-hashes`, from exactly the indexes the lock
names (a pip that asks an index it cannot reach retries for a long time before it gives
up). The build then only copies them in.

A new version with the same dependencies has the same dependency lock: the wheels pip
chose for it on this base are kept, keyed by the base's digest and the lock's text, and
used again after every file's sha256 is checked against the lock (pip checks them once
more inside the build). That saves a container and an index round trip per locked file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ci_kit import console
from ci_kit.errors import ImageError
from ci_kit.image.base import Base
from ci_kit.image.cache import cache_dir
from ci_kit.image.engine import docker, last_line
from ci_kit.image.lock import Locked

KEPT_WHEEL_SETS = 8  # dependency sets kept per machine (a data product's can be hundreds of MB)

# pip from the base's own bundled wheel when it has one (Debian's python3-venv does), else
# from a throwaway venv: the base's pip, not ours, decides which wheels fit it.
_PIP_SH = ('set -e; pip=$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | head -1); '
           'if [ -n "$pip" ]; then exec python3 "$pip/pip" "$@"; fi; '
           'python3 -m venv /tmp/p >/dev/null; exec /tmp/p/bin/pip "$@"')


def fetch_dependencies(deps: list[Locked], base: Base, ctx: Path) -> bool:
    """The locked dependency wheels in ctx/wheels/deps and the lock in ctx/deps.lock;
    True when the wheels came from the kept sets."""
    dest = ctx / "wheels" / "deps"
    dest.mkdir(parents=True, exist_ok=True)
    text = "".join(pin.line() + "\n" for pin in deps)
    (ctx / "deps.lock").write_text(text)
    if not deps:
        return False
    kept = cache_dir("image-wheels") / hashlib.sha256(f"{base.digest}\n{text}".encode()).hexdigest()
    if _reuse_wheels(kept, deps, dest):
        console.step(f"image: {len(deps)} locked dependency wheels reused from {kept} (sha256 checked against the lock)")
        os.utime(kept)  # most recently used: the last to be pruned
        return True
    missing = [pin.name for pin in deps if not pin.index]
    if missing:  # uv names the index of every file it locks (--emit-index-annotation)
        raise ImageError(f"the lock does not say which index {', '.join(missing)} came from", "this is a bug in ci-kit; please report it")
    urls = list(dict.fromkeys(pin.index for pin in deps))
    proc = docker(*_pip_download(urls, base, ctx), timeout=1800)
    if proc.returncode != 0:
        console.detail(proc.stdout)
        raise ImageError(f"fetching the locked dependencies failed: {last_line(proc.stdout)}",
                         f"every locked file must be on {' or '.join(urls)} as a wheel for the base's Python")
    if _check_wheels(dest, deps) is None:
        raise ImageError("pip download left files that do not match the lock", "this is a bug in ci-kit; please report it")
    _keep_wheels(dest, kept)
    prune(kept.parent, KEPT_WHEEL_SETS)
    return False


def _pip_download(urls: list[str], base: Base, ctx: Path) -> list[str]:
    """`docker run` arguments: pip download of ctx/deps.lock from `urls` into ctx/wheels/deps,
    as this user, with pip's cache, this machine's proxies and CA bundle."""
    where = ["--index-url", urls[0], *(a for u in urls[1:] for a in ("--extra-index-url", u))]
    mounts = ["-v", f"{ctx}:/ctx", "-v", f"{cache_dir('pip-download')}:/cache"]
    cert: list[str] = []
    ca = ca_bundle()
    if ca and any(u.startswith("https:") for u in urls):
        mounts += ["-v", f"{os.path.realpath(ca)}:/ci-kit-ca.crt:ro"]
        cert = ["--cert", "/ci-kit-ca.crt"]
    proxies = [a for var in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
               if os.environ.get(var) for a in ("-e", var)]
    return ["run", "--rm", "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp", *proxies, *mounts,
            "--entrypoint", "/bin/sh", base.ref, "-c", _PIP_SH, "pip",
            "download", "--disable-pip-version-check", "--no-input", "--quiet", "--no-deps", "--require-hashes",
            "--only-binary=:all:", "--cache-dir", "/cache", *where, *cert,
            "--dest", "/ctx/wheels/deps", "-r", "/ctx/deps.lock"]


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


def _check_wheels(folder: Path, deps: list[Locked]) -> list[Path] | None:
    """The folder's wheels when there is exactly one per locked dependency, each with a
    sha256 the lock lists for that dependency; None otherwise."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    from ci_kit.dists import sha256_of

    by_hash = {h: pin for pin in deps for h in pin.hashes}
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
    return files if seen == {pin.name for pin in deps} else None


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


def prune(folder: Path, keep: int) -> None:
    """Remove all but the `keep` most recently used sets (a set being stored is left alone)."""
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
