"""ci-kit's cache on this machine, shared by the base facts and the kept dependency wheels.

Only content-addressed entries go here (keyed by an image digest or a lock's hash), and
each is checked again on use, so a stale or damaged entry is never trusted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """XDG_CACHE_HOME/ci-kit/PARTS (or ~/.cache), made if missing."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ci-kit"
    try:
        path = root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home (some CI runners): a cache in the temporary directory
        path = Path(tempfile.gettempdir(), f"ci-kit-cache-{os.getuid()}").joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
    return path


def write_atomically(path: Path, text: str) -> None:
    """Readers (another ci-kit on this machine) see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
