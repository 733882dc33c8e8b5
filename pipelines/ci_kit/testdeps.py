"""What the product's tests need besides the release: extras of the package, PEP 735
dependency groups and requirements files of the repository, the way projects declare
them. Each is checked against what the package and the repository really have before
any environment is made, so a typo is a one-line error instead of a run that fails on
an import (uv only warns about an unknown extra)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ci_kit.config import ProductTestSettings
from ci_kit.dists import read_metadata
from ci_kit.errors import UsageError

# ImportError says "No module named 'x'"; `python -m x` says "No module named x"
_MISSING = re.compile(r"No module named '?([\w.]+)'?")


def package_extras(path: Path) -> list[str]:
    """The extras a wheel or sdist declares (Provides-Extra, or extra markers)."""
    md = read_metadata(path)
    declared = set(md.get("provides_extra") or [])
    for req in md.get("requires_dist") or []:
        declared.update(re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", str(req)))
    return sorted(declared)


def repository_groups(clone: Path) -> list[str]:
    """The PEP 735 dependency groups of the repository's pyproject.toml."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads((clone / "pyproject.toml").read_text())
    except (OSError, ValueError):
        return []
    groups = data.get("dependency-groups")
    return sorted(groups) if isinstance(groups, dict) else []


def check(cfg: ProductTestSettings, release_file: Path, clone: Path) -> None:
    """Unknown extras, groups or requirement files are configuration errors naming what exists."""
    extras = package_extras(release_file)
    unknown = [e for e in cfg.test_extras if _norm(e) not in {_norm(x) for x in extras}]
    if unknown:
        raise UsageError(f"test-extras: the package has no extra {', '.join(unknown)} (it has: {', '.join(extras) or 'none'})",
                         "fix test-extras, or use test-groups for the repository's dependency groups")
    groups = repository_groups(clone)
    unknown = [g for g in cfg.test_groups if _norm(g) not in {_norm(x) for x in groups}]
    if unknown:
        raise UsageError(f"test-groups: pyproject.toml has no dependency group {', '.join(unknown)} (it has: {', '.join(groups) or 'none'})",
                         "fix test-groups, or use test-extras for the package's extras")
    missing = [r for r in cfg.test_requirements if not (clone / r).is_file()]
    if missing:
        raise UsageError(f"test-requirements: {', '.join(missing)} not found in the repository at the tested commit",
                         "paths are relative to the repository root")


def install_args(cfg: ProductTestSettings, clone: Path) -> list[str]:
    """uv pip install arguments for the groups and requirement files, read from the clone."""
    args: list[str] = []
    for g in cfg.test_groups:
        args += ["--group", f"{clone / 'pyproject.toml'}:{g}"]
    for r in cfg.test_requirements:
        args += ["-r", str(clone / r)]
    return args


def missing_module_hint(output: str, release_file: Path, clone: Path) -> str:
    """When the tests could not import a module, name what could provide it."""
    m = _MISSING.search(output)
    if not m:
        return ""
    extras, groups = package_extras(release_file), repository_groups(clone)
    return (f"the tests could not import {m.group(1)}: add what provides it to test-extras "
            f"(the package has: {', '.join(extras) or 'none'}), test-groups (the repository has: {', '.join(groups) or 'none'}) "
            "or test-requirements")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
