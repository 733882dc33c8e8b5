"""The base image: pinned by digest, and what it says about itself.

A digest names fixed bytes, so every build from it starts the same; a tag is refused
unless asked for, and even then resolved to its digest at once, which FROM and the labels
use. The base's Python version, platform and libc decide which wheels fit: they are read
by running the base once per digest and kept, since a digest's answer never changes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TypedDict

from ci_kit import console
from ci_kit.errors import ImageError, UsageError
from ci_kit.image.cache import cache_dir, write_atomically
from ci_kit.image.engine import docker, last_line

_DIGEST_REF = re.compile(r"^(?P<name>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class Base:
    given: str      # as configured
    name: str       # repository part (no tag, no digest)
    digest: str     # sha256:...
    pinned: bool    # given by digest

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}"


class BaseFacts(TypedDict):
    python: str     # X.Y
    full: str       # X.Y.Z
    machine: str    # x86_64, aarch64, ...
    libc: str
    venv: bool      # has the venv module (ensurepip)
    digest: str


def _without_tag(name: str) -> str:
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def resolve_base(given: str, allow_unpinned: bool) -> Base:
    """The configured base, present in the engine, by digest."""
    if not given:
        raise UsageError("no base image configured",
                         "set image-base = \"REGISTRY/REPO@sha256:...\" in [tool.ci-kit] or pass --image-base "
                         "(scripts/make-base-image makes one here and prints its reference)")
    m = _DIGEST_REF.match(given)
    if m:
        base = Base(given, _without_tag(m.group("name")), m.group("digest"), True)
        if docker("image", "inspect", "--format", "{{.Id}}", base.ref, show=False).returncode != 0:
            proc = docker("pull", "--quiet", base.ref, timeout=900)
            if proc.returncode != 0:
                raise ImageError(f"base image {base.ref} not found: {last_line(proc.stdout)}",
                                 "check image-base (scripts/make-base-image prints a current reference) and the registry")
        return base
    if "@" in given:
        raise UsageError(f"base image {given!r}: only sha256 digests are accepted after '@'", "use REPO@sha256:<64 hex digits>")
    return _resolve_tag(given, allow_unpinned)


def _resolve_tag(given: str, allow_unpinned: bool) -> Base:
    """A base given by tag: find what it points at now; refuse it unless allowed."""
    proc = docker("pull", "--quiet", given, timeout=900)
    if proc.returncode != 0:
        raise ImageError(f"base image {given} not found: {last_line(proc.stdout)}",
                         "check image-base and the registry (scripts/make-base-image pushes one to 127.0.0.1:5000)")
    insp = docker("image", "inspect", "--format", "{{json .RepoDigests}}", given, show=False)
    name = _without_tag(given)
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


_FACTS_PY = ("import json,os,platform,sys,sysconfig;"
             "print(json.dumps({'python':'%d.%d'%sys.version_info[:2],'full':platform.python_version(),"
             "'machine':platform.machine(),'libc':' '.join(platform.libc_ver()),"
             "'venv':__import__('importlib.util').util.find_spec('ensurepip') is not None}))")


def base_facts(base: Base) -> BaseFacts:
    """Python version, platform and libc of the base, from the cache or by running it once."""
    cached = cache_dir("bases") / (base.digest.replace(":", "-") + ".json")
    try:
        facts = json.loads(cached.read_text())
        if facts.get("digest") == base.digest and facts.get("venv"):
            return facts  # type: ignore[no-any-return]
    except (OSError, ValueError):
        pass
    proc = docker("run", "--rm", "--network", "host", "--entrypoint", "python3", base.ref, "-c", _FACTS_PY,
                  show=False, timeout=300)
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ImageError(f"base image {base.ref} has no working python3: {last_line(proc.stdout)}",
                         "use a base with python3 and python3-venv (scripts/make-base-image makes one)") from None
    if not facts.get("venv"):
        raise ImageError(f"base image {base.ref} has python3 but not its venv module (ensurepip)",
                         "use a base with python3-venv (scripts/make-base-image makes one)")
    facts["digest"] = base.digest
    write_atomically(cached, json.dumps(facts, sort_keys=True))
    return facts  # type: ignore[no-any-return]
