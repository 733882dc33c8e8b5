"""What a release is called (NAME==VERSION) and where it is promoted to."""

from __future__ import annotations

from dataclasses import dataclass

from ci_kit.config import IndexSettings
from ci_kit.errors import UsageError


@dataclass(frozen=True)
class Spec:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def parse(text: str) -> Spec:
    """NAME==VERSION exactly: one release, never a range."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    hint = "name one release exactly, e.g. churn-model==1.2.0 (job 1 prints it)"
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise UsageError(f"malformed requirement {text!r}", hint) from None
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version or req.extras or req.url or req.marker:
        raise UsageError(f"{text!r} is not NAME==VERSION", hint)
    try:
        version = str(Version(specs[0].version))
    except InvalidVersion:
        raise UsageError(f"{text!r}: {specs[0].version!r} is not a valid version", hint) from None
    return Spec(str(canonicalize_name(req.name)), version)


def is_final(version: str) -> bool:
    """A final release: no pre-release, dev or local part (a tagged commit)."""
    from packaging.version import Version

    v = Version(version)
    return not (v.is_prerelease or v.is_devrelease or v.local)


def target_index(cfg: IndexSettings, version: str) -> str:
    """Routing (docs/architecture.md): final releases go to stable, everything else to testing."""
    if cfg.promote_to == "stable":
        return cfg.stable_index
    if cfg.promote_to == "testing":
        return cfg.testing_index
    return cfg.stable_index if is_final(version) else cfg.testing_index
