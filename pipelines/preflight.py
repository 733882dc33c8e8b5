"""Checks made before the first write to the index: every path a command will write.

Why up front: a job that uploads or promotes and only then finds that `--output` names a
folder, or that the results folder is read-only, has changed the index and still
failed. Each check is one line naming the path, the key or flag it came from and what
is wrong (read-only, full, not a folder, a symlink loop), exit 2.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from pipelines.errors import UsageError

_WHY = {errno.EROFS: "read-only file system", errno.EACCES: "not writable", errno.EPERM: "not writable",
        errno.ENOSPC: "no space left on the device", errno.ELOOP: "a symlink loop",
        errno.ENOTDIR: "a file stands where a folder should be", errno.EDQUOT: "over its disk quota"}


def why(exc: OSError) -> str:
    return _WHY.get(exc.errno or 0, exc.strerror or str(exc))


def writable_dir(path: Path, what: str) -> Path:
    """Prove a file can be written in the folder (a probe file is written and removed: the
    only honest test on full or read-only file systems). Folders made for the probe are
    removed again: a check leaves the work tree as it found it (the stage makes them)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file, not a folder", f"point {what} at a folder")
    made = path
    while not made.parent.exists() and made.parent != made:
        made = made.parent
    made = None if path.exists() else made
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".ci-kit-probe-") as fh:
            fh.write(b"x" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise UsageError(f"{what} {path}: {why(exc)}", f"point {what} at a folder you can write") from None
    finally:
        if made is not None:
            import shutil

            shutil.rmtree(made, ignore_errors=True)
    return path


def writable_file(path_text: str | None, what: str) -> None:
    """A file ci-kit appends to at the end (--output, --summary): its folder must exist
    and be writable, and the path must not be a folder."""
    if not path_text:
        return
    path = Path(path_text).expanduser()
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder", f"{what} names a file that ci-kit appends to")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: the folder {parent} does not exist", "create it first, or name a file in an existing folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{what} {path} is not writable", "name a file you can write")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: the folder {parent} is not writable", "name a file in a folder you can write")
