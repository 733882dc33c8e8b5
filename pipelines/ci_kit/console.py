"""Everything ci-kit prints goes through here, so secrets are masked in one place.

Progress goes to stderr; results (NAME==VERSION, tables, JSON) go to stdout, so
`$(ci-kit build-and-push)` and `--json` stay machine-readable.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO


class Console:
    """What ci-kit prints and the state that shapes it: the secrets to mask, whether
    progress is quiet, when the run started. One object instead of module globals, so a
    test (or an embedding program) can print through a console of its own (`use`) and
    read what it printed; the module's functions below speak for the current one.

    The streams are looked up when printing (None: sys.stdout/sys.stderr of that moment),
    so pytest's capsys and contextlib.redirect_stdout see the output."""

    def __init__(self, *, quiet: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.quiet = quiet
        self._secrets: set[str] = set()
        self._stdout = stdout
        self._stderr = stderr
        self.t0 = time.monotonic()

    @property
    def stdout(self) -> TextIO:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr or sys.stderr

    def add_secret(self, value: str | None) -> None:
        """Mask value from now on, also in the spellings JSON and XML give it (a record's
        output field, a JUnit attribute), so an escaped quote or ampersand does not unmask it."""
        if value:
            from xml.sax.saxutils import escape, quoteattr

            self._secrets.add(value)
            # quoteattr picks single quotes around a value with a double quote; ElementTree
            # (pytest's JUnit writer) keeps double quotes and writes &quot; instead
            for variant in (json.dumps(value)[1:-1], escape(value), quoteattr(value)[1:-1], escape(value, {'"': "&quot;"})):
                if variant != value:
                    self._secrets.add(variant)

    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def mask(self, text: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(s, "****")
        return text

    def step(self, message: str) -> None:
        """A progress line on stderr with the elapsed time, e.g. `[ 1.2s] build: ...`."""
        if not self.quiet:
            print(f"[{time.monotonic() - self.t0:5.1f}s] {self.mask(message)}", file=self.stderr, flush=True)

    def detail(self, text: str) -> None:
        """Output of a child process, shown when it failed or with --verbose."""
        if text:
            self.stderr.write(self.mask(text if text.endswith("\n") else text + "\n"))
            self.stderr.flush()

    def out(self, text: str) -> None:
        print(self.mask(text), file=self.stdout, flush=True)

    def out_json(self, data: Any) -> None:
        print(self.mask(json.dumps(data, indent=2, sort_keys=True, default=str)), file=self.stdout, flush=True)

    def error(self, message: str, hint: str = "") -> None:
        print(f"ci-kit: error: {self.mask(message)}", file=self.stderr)
        if hint:
            print(f"ci-kit: hint: {self.mask(hint)}", file=self.stderr)


_current = Console()


def current() -> Console:
    return _current


@contextlib.contextmanager
def use(console: Console) -> Iterator[Console]:
    """Print through console until the block ends (tests; an embedding program)."""
    global _current
    before, _current = _current, console
    try:
        yield console
    finally:
        _current = before


def add_secret(value: str | None) -> None:
    _current.add_secret(value)


def secrets() -> frozenset[str]:
    return _current.secrets()


def mask(text: str) -> str:
    return _current.mask(text)


def set_quiet(quiet: bool) -> None:
    _current.quiet = quiet


def step(message: str) -> None:
    _current.step(message)


def detail(text: str) -> None:
    _current.detail(text)


def out(text: str) -> None:
    _current.out(text)


def out_json(data: Any) -> None:
    _current.out_json(data)


def error(message: str, hint: str = "") -> None:
    _current.error(message, hint)


def write_outputs(path: str | None, values: dict[str, Any]) -> None:
    """Append KEY=VALUE lines (GITHUB_OUTPUT's format; Jenkins reads it with readProperties)."""
    if not path:
        return
    lines = []
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        lines.append(f"{key}={mask(text)}\n")
    with open(os.path.expanduser(path), "a", encoding="utf-8") as fh:
        fh.writelines(lines)


def write_summary(path: str | None, markdown: str) -> None:
    """Append a Markdown section (e.g. to "$GITHUB_STEP_SUMMARY"); masked like all output."""
    if not path:
        return
    with open(os.path.expanduser(path), "a", encoding="utf-8") as fh:
        fh.write(mask(markdown.rstrip("\n")) + "\n\n")
