"""Reading and writing JUnit XML: the one format every CI shows, and where ci-kit takes
its test counts from (the file it asked pytest for, never the command's word).

Kept apart from the test stage so that the counting rule, the tolerance for broken
files (colour codes, control characters) and the stand-in file for commands that write
none are in one small place.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ci_kit import console
from ci_kit.contract import Counts

# Characters XML 1.0 forbids: colour codes and other control characters in a test's output
# make a JUnit file unparseable; the counts are still in it.
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def counts(path: Path) -> Counts | None:
    """Test counts from a JUnit XML file; None when there is none or it is not JUnit."""
    total: Counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        root = ET.fromstring(XML_INVALID.sub("", text))
    except ET.ParseError:
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        return None
    for s in suites:
        for k in ("tests", "failures", "errors", "skipped"):
            try:
                total[k] += int(s.get(k, 0))
            except ValueError:
                return None
    return total


def failures(path: Path, limit: int = 50) -> list[str]:
    """The names of failed or errored test cases (classname::name), for job summaries."""
    try:
        root = ET.fromstring(XML_INVALID.sub("", path.read_text(encoding="utf-8", errors="replace")))
    except (OSError, ET.ParseError):
        return []
    names = [f"{c.get('classname', '')}::{c.get('name', '')}".lstrip(":") for c in root.iter("testcase")
             if c.find("failure") is not None or c.find("error") is not None]
    return names[:limit]


def write_stand_in(path: Path, name: str, rc: int, output: str) -> None:
    """A one-case JUnit file for test commands that write none, so CI always has one."""
    suite = ET.Element("testsuite", name=name, tests="1", failures="0" if rc == 0 else "1", errors="0", skipped="0")
    case = ET.SubElement(suite, "testcase", classname="ci-kit", name="test-command")
    if rc != 0:
        ET.SubElement(case, "failure", message=f"exit {rc}").text = console.mask(output[-4000:])
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
