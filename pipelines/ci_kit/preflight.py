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

from ci_kit.errors import UsageError

_WHY = {errno.EROFS: "read-only file system", errno.EACCES: "not writable", errno.EPERM: "not writable",
        errno.ENOSPC: "no space left on the device", errno.ELOOP: "a symlink loop",
        errno.ENOTDIR: "a file stands where a folder should be", errno.EDQUOT: "over its disk quota"}


def why(exc: OSError) -> str:
    return _WHY.get(exc.errno or 0, exc.strerror or str(exc))


def _probe(folder: Path) -> None:
    """Write a 4 KiB file in folder, flush it to the disk and remove it; OSError if that
    fails. The only honest test on full or read-only file systems: permission bits and
    os.access do not see a full disk, a read-only mount or a quota."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".ci-kit-probe-") as fh:
        fh.write(b"x" * 4096)
        fh.flush()
        os.fsync(fh.fileno())


def writable_dir(path: Path, what: str) -> Path:
    """Prove a file can be written where the folder is or will be, without making it: a
    probe file is written and removed in the folder, or in its nearest existing parent
    (the only honest test on full or read-only file systems)."""
    here = path
    for here in (path, *path.parents):
        try:
            os.stat(here)
            break
        except FileNotFoundError:
            continue
        except OSError as exc:  # a symlink loop, a file in the way, a folder we may not enter
            raise UsageError(f"{what} {path}: {why(exc)}", f"point {what} at a folder you can write") from None
    if not here.is_dir():
        raise UsageError(f"{what} {path}: {here} is a file, not a folder" if here != path else f"{what} {path} is a file, not a folder",
                         f"point {what} at a folder")
    try:
        _probe(here)
    except OSError as exc:
        raise UsageError(f"{what} {path}: {why(exc)}", f"point {what} at a folder you can write") from None
    return path


def writable_file(path_text: str | None, what: str, *, make_parents: bool = False) -> None:
    """A file ci-kit writes at the end (--output, --summary, --html): checked before the
    index is read, so a typo costs nothing. Its folder must exist and be writable, and the
    path must not be a folder. With make_parents (a page ci-kit writes whole, --html) the
    missing folders are made when it is written: then the nearest existing one must be a
    writable folder. --output and --summary append to files CI gives (GITHUB_OUTPUT): a
    missing folder there is more likely a typo than a wish."""
    if not path_text:
        return
    path = Path(path_text).expanduser()
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder", f"{what} names a file that ci-kit appends to")
    parent = path.parent if str(path.parent) else Path(".")
    if make_parents:
        parent = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
        if not parent.is_dir():
            raise UsageError(f"{what} {path}: {parent} is a file, not a folder", "name a file in a folder")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: the folder {parent} does not exist", "create it first, or name a file in an existing folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{what} {path} is not writable", "name a file you can write")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: the folder {parent} is not writable", "name a file in a folder you can write")


def temp_dir() -> Path:
    """The folder ci-kit's temporary folders (clones, environments, downloads) go to.

    Python's tempfile would quietly fall back to /tmp, or to the current folder, when
    TMPDIR is full or read-only; a CI agent sets TMPDIR to keep that work off a small
    root disk, so a TMPDIR that cannot be written is an error here, before the index is
    touched, not a silent move elsewhere."""
    named = next(((var, os.environ[var]) for var in ("TMPDIR", "TEMP", "TMP") if os.environ.get(var)), None)
    if named is None:
        return Path(tempfile.gettempdir())
    var, text = named
    path = Path(text)
    if not path.is_dir():
        raise UsageError(f"{var} {path} is not an existing folder", f"create it or point {var} at a folder you can write")
    try:
        _probe(path)
    except OSError as exc:
        raise UsageError(f"{var} {path}: {why(exc)}", f"free space in {var} or point {var} at a folder you can write") from None
    return path
