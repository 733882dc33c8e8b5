"""What an image says about itself: OCI's labels and ci-kit's (docs/image.md lists them).

Every value comes from the release, the index, the lock, the base or ci-kit's version,
never from the clock (the creation time is the commit's): the same ci-kit rebuilding the
same release gives the same labels, so even the label layer comes from the cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ci_kit import __version__
from ci_kit.image.base import Base
from ci_kit.release import Spec

if TYPE_CHECKING:
    from ci_kit.listing import Release, ReleaseFile


def source_url(rel: Release, project_dir: Path) -> str:
    """The release's Source/Repository/Homepage URL, else the repository's origin."""
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


def image_labels(spec: Spec, rel: Release, wheel: ReleaseFile, base: Base, *, promoted: bool, lock_sha256: str,
                 commit: str, project_dir: Path, index_url: str) -> dict[str, str]:
    """The labels, without the empty ones."""
    labels = {
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.description": str(rel.metadata.get("summary") or f"{spec} (ci-kit image)"),
        "org.opencontainers.image.version": spec.version,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.source": source_url(rel, project_dir),
        "org.opencontainers.image.created": created_time(project_dir, commit),
        "org.opencontainers.image.base.name": base.given if not base.pinned else base.name,
        "org.opencontainers.image.base.digest": base.digest,
        "org.ci-kit.version": __version__,
        "org.ci-kit.requirement": str(spec),
        "org.ci-kit.index": rel.index,
        "org.ci-kit.index-url": index_url,
        "org.ci-kit.promoted": "true" if promoted else "false",
        "org.ci-kit.from-unstable": "false" if promoted else "true",
        "org.ci-kit.lock.sha256": lock_sha256,
        "org.ci-kit.wheel": wheel.basename,
        "org.ci-kit.wheel.sha256": wheel.sha256,
        "org.ci-kit.base.pinned": "true" if base.pinned else "false",
    }
    return {k: v for k, v in labels.items() if v != ""}
