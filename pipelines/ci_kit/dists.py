"""Facts about distribution files that several stages need: hashes, which Pythons a
wheel serves, its core metadata, which top-level modules and console scripts it
installs. A neutral module, so that build, push, test, the gate, promotion and the image
step share one answer without importing each other."""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from pathlib import Path
from typing import Any


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def version_of(filename: str) -> str | None:
    """The normalised version a wheel's or sdist's file name carries, or None."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    try:
        return str(parse_wheel_filename(filename)[1] if filename.endswith(".whl") else parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def wheel_fits(filename: str, python: str) -> bool:
    """Whether a wheel's tags admit CPython `python` (pure wheels always do)."""
    from packaging.utils import parse_wheel_filename

    nodot = python.replace(".", "")
    minor = int(python.split(".")[1])
    for tag in parse_wheel_filename(filename)[3]:
        if tag.interpreter in ("py3", f"py{nodot}", f"cp{nodot}"):
            return True
        if tag.abi == "abi3" and tag.interpreter.startswith("cp3") and int(tag.interpreter[3:] or 0) <= minor:
            return True
    return False


def top_level_modules(wheel: Path) -> list[str]:
    """Importable top-level names a wheel installs, read from its file list."""
    names = set()
    with zipfile.ZipFile(wheel) as zf:
        for n in zf.namelist():
            first = n.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in n:
                names.add(first)
            elif n.endswith(".py"):
                names.add(n[:-3])
            elif n.endswith((".so", ".pyd")):
                names.add(n.split(".", 1)[0])
    return sorted(x for x in names if x.isidentifier())


def console_scripts(wheel: Path) -> list[str]:
    """The wheel's console scripts, read by importlib.metadata straight from the zip."""
    from importlib.metadata import PathDistribution

    with zipfile.ZipFile(wheel) as zf:
        info = next((n.split("/", 1)[0] for n in zf.namelist() if n.split("/", 1)[0].endswith(".dist-info")), "")
        if not info:
            return []
        dist = PathDistribution(zipfile.Path(zf, info + "/"))
        return [ep.name for ep in dist.entry_points.select(group="console_scripts")]


def read_metadata(path: Path) -> dict[str, Any]:
    """Core metadata of a wheel (METADATA) or sdist (PKG-INFO) as upload form fields."""
    from packaging.metadata import parse_email

    text = b""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            text = zf.read(name)
    else:
        with tarfile.open(path) as tf:
            member = min((m for m in tf.getmembers() if m.name.endswith("/PKG-INFO")), key=lambda m: m.name.count("/"))
            text = tf.extractfile(member).read()  # type: ignore[union-attr]
    raw, _ = parse_email(text)
    form: dict[str, Any] = {}
    for key, value in raw.items():
        form[key] = [f"{k}, {v}" for k, v in value.items()] if key == "project_urls" and isinstance(value, dict) else value
    return form
