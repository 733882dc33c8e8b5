"""Fixtures of the fast layer: no server, no engine, no child of ci-kit's making.

Every unit test prints through a fresh console (no secrets or quiet flag left over from
another test), runs with no CI_KIT_* variable of the developer's shell and no cancel left
over in runner, gets back the signal handlers `cli.main` installs, and fails if anything
tries to reach a real index.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ci_kit import config, console
from ci_kit.config import Settings

from .fakes import FakeIndex

COMMIT = "c0ffee" + "0" * 34
OTHER_COMMIT = "badc0de" + "0" * 33


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[console.Console]:
    for var in list(os.environ):
        if var.startswith("CI_KIT_"):
            monkeypatch.delenv(var)

    def no_index(*args: Any, **kw: Any) -> None:
        raise AssertionError(f"a unit test reached for a real index: {args[1:3]}")

    monkeypatch.setattr("ci_kit.index.Index.request", no_index)
    monkeypatch.setattr("ci_kit.runner._cancelled", 0)  # no signal left over from another test's cancel()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with console.use(console.Console()) as c:
        yield c
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a project folder without [tool.ci-kit]; keys as flags, e.g.
    make_settings(**{"python-versions": "3.11,3.12"})."""

    def make(environ: dict[str, str] | None = None, **flags: Any) -> Settings:
        return config.load(tmp_path, flags, environ=environ or {})

    return make


@pytest.fixture
def fake() -> FakeIndex:
    """An index with ci's unstable (volatile), testing and stable, as `ci-kit server start` makes them."""
    index = FakeIndex()
    for name, volatile in (("unstable", True), ("testing", False), ("stable", False)):
        index.create_index(f"ci/{name}", volatile=volatile)
    index.writes.clear()
    return index
