"""Everything ci-kit prints goes through here, so secrets are masked in one place.

Progress goes to stderr; results (NAME==VERSION, tables, JSON) go to stdout, so
`$(ci-kit build-and-push)` and `--json` stay machine-readable.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_secrets: set[str] = set()
_quiet = False
_t0 = time.monotonic()


def add_secret(value: str | None) -> None:
    """Mask value from now on, also in the spellings JSON and XML give it (a record's
    output field, a JUnit attribute), so an escaped quote or ampersand does not unmask it."""
    if value:
        from xml.sax.saxutils import escape, quoteattr

        _secrets.add(value)
        for variant in (json.dumps(value)[1:-1], escape(value), quoteattr(value)[1:-1]):
            if variant != value:
                _secrets.add(variant)


def secrets() -> frozenset[str]:
    return frozenset(_secrets)


def mask(text: str) -> str:
    for s in sorted(_secrets, key=len, reverse=True):
        text = text.replace(s, "****")
    return text


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def step(message: str) -> None:
    """A progress line on stderr with the elapsed time, e.g. `[ 1.2s] build: ...`."""
    if not _quiet:
        print(f"[{time.monotonic() - _t0:5.1f}s] {mask(message)}", file=sys.stderr, flush=True)


def detail(text: str) -> None:
    """Output of a child process, shown when it failed or with --verbose."""
    if text:
        sys.stderr.write(mask(text if text.endswith("\n") else text + "\n"))
        sys.stderr.flush()


def out(text: str) -> None:
    print(mask(text), flush=True)


def out_json(data: Any) -> None:
    print(mask(json.dumps(data, indent=2, sort_keys=True, default=str)), flush=True)


def error(message: str, hint: str = "") -> None:
    print(f"ci-kit: error: {mask(message)}", file=sys.stderr)
    if hint:
        print(f"ci-kit: hint: {mask(hint)}", file=sys.stderr)


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
