"""What ci-kit prints: secrets masked in every spelling, progress on stderr unless quiet,
results on stdout, KEY=VALUE and Markdown files appended."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ci_kit import console


def test_a_secret_is_masked_also_as_json_and_xml_spell_it() -> None:
    c = console.Console()
    c.add_secret('pa"ss<&>word')
    assert c.mask('raw pa"ss<&>word') == "raw ****"
    assert c.mask(json.dumps({"out": 'pa"ss<&>word'})) == '{"out": "****"}'
    import xml.etree.ElementTree as ET

    assert c.mask(ET.tostring(ET.Element("x", a='pa"ss<&>word'), encoding="unicode")) == '<x a="****" />'  # JUnit attributes
    c.add_secret("")
    c.add_secret(None)
    assert "" not in c.secrets()


def test_the_longest_secret_is_masked_first() -> None:
    c = console.Console()
    c.add_secret("token-abc")
    c.add_secret("token-abc-and-more")
    assert c.mask("token-abc-and-more token-abc") == "**** ****"


def test_progress_goes_to_stderr_with_the_time_and_results_to_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    c = console.Console(stdout=out, stderr=err)
    c.add_secret("Printed-Secret-1")
    c.step("build: Printed-Secret-1")
    c.out("x==1 Printed-Secret-1")
    c.out_json({"b": 1, "a": "Printed-Secret-1"})
    c.error("bad Printed-Secret-1", "hint Printed-Secret-1")
    c.detail("child said Printed-Secret-1")
    assert out.getvalue() == 'x==1 ****\n{\n  "a": "****",\n  "b": 1\n}\n'
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("[") and lines[0].endswith("s] build: ****")
    assert lines[1:] == ["ci-kit: error: bad ****", "ci-kit: hint: hint ****", "child said ****"]


def test_quiet_silences_progress_only() -> None:
    out, err = io.StringIO(), io.StringIO()
    c = console.Console(quiet=True, stdout=out, stderr=err)
    c.step("progress")
    c.error("still said")
    c.out("result")
    assert out.getvalue() == "result\n" and err.getvalue() == "ci-kit: error: still said\n"


def test_the_module_speaks_for_the_console_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    mine = console.Console(stdout=io.StringIO(), stderr=io.StringIO())
    with console.use(mine):
        console.add_secret("Scoped-Secret-22")
        console.set_quiet(True)
        console.out("Scoped-Secret-22")
        console.step("hidden")
    assert mine.stdout.getvalue() == "****\n" and mine.stderr.getvalue() == "" and mine.quiet
    console.out("Scoped-Secret-22")  # the console before `use` knows nothing of it
    assert capsys.readouterr().out == "Scoped-Secret-22\n"


def test_outputs_are_appended_key_value_lines_with_json_for_non_strings(tmp_path: Path) -> None:
    console.add_secret("Output-Secret-3")
    path = tmp_path / "github_output"
    path.write_text("before=1\n")
    console.write_outputs(str(path), {"requirement": "x==1", "changed": True, "files": [{"a": 1}], "leak": "Output-Secret-3"})
    assert path.read_text() == 'before=1\nrequirement=x==1\nchanged=true\nfiles=[{"a": 1}]\nleak=****\n'
    console.write_outputs(None, {"x": 1})  # no file asked for: nothing written anywhere


def test_summaries_are_appended_sections(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    console.write_summary(str(path), "### one\n\n")
    console.write_summary(str(path), "### two")
    assert path.read_text() == "### one\n\n### two\n\n"
