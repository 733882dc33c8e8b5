"""README matches the code: the configuration table and the exit codes come from the
declarations the code uses, and the CLI starts without importing heavy modules."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_readme_config_table_is_the_generated_one():
    from ci_kit.config import markdown_table

    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- config-table.*?-->\n(.*?)\n<!-- /config-table -->", readme, re.DOTALL).group(1)
    assert table == markdown_table(), "README's table is stale: paste `ci-kit config --table` into it"


def test_readme_lists_every_exit_code():
    from ci_kit.errors import EXIT_CODES

    readme = (ROOT / "README.md").read_text()
    for code, text in EXIT_CODES.items():
        assert f"| {code} | {text} |" in readme


def test_help_imports_nothing_heavy():
    code = ("import sys; from ci_kit.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('requests', 'packaging', 'build', 'twine', 'urllib3', 'pyarrow') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "HEAVY=", out


def test_settings_groups_are_exactly_the_key_table():
    """The groups are declared for mypy, the table is the truth: every key is a field of
    its group and every field of a group (besides its secret's source) is a key."""
    from ci_kit import config

    for group, cls in config.GROUPS.items():
        declared = set(config.key_fields(cls))
        table = {k.attr for k in config.KEYS if k.group == group}
        assert declared == table, f"settings.{group}: only in the class {declared - table}, only in KEYS {table - declared}"
    assert {k.group for k in config.KEYS} == set(config.GROUPS)
    s = config.load(ROOT / "examples" / "churn-model", environ={"CI_KIT_TEST_EXTRAS": "a,b", "CI_KIT_IMAGE": "1"})
    assert s.test.test_extras == ("a", "b") and s.run.image is True
    assert s.describe()["test-extras"] == {"value": ["a", "b"], "source": "environment CI_KIT_TEST_EXTRAS"}


def _contract_tables() -> dict[str, dict[str, bool]]:
    """docs/CONTRACT.md's Outputs section: {heading: {field: in --output}}."""
    text = (ROOT / "docs" / "CONTRACT.md").read_text()
    section = text.split("\n## Outputs\n", 1)[1].split("\n## ", 1)[0]
    tables = {}
    for block in section.split("\n### ")[1:]:
        heading, *lines = block.splitlines()
        rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if line.startswith("| `")]
        tables[heading.strip()] = {row[0].strip("`"): row[2] == "yes" for row in rows}
    return tables


def test_contract_outputs_are_the_typed_results():
    """Every field CONTRACT.md documents for a command's --json/--output is in the typed
    result (contract.py), and every field of the typed result is documented."""
    from ci_kit import contract

    tables = _contract_tables()
    assert set(tables) == set(contract.DOCUMENTED), "a heading of CONTRACT.md's Outputs is not in contract.DOCUMENTED, or back"
    for heading, shape in contract.DOCUMENTED.items():
        documented, declared = set(tables[heading]), set(shape.__annotations__)
        assert documented == declared, f"{heading}: only in CONTRACT.md {documented - declared}, only in the code {declared - documented}"
        if heading.startswith("ci-kit "):
            for verb in (h.removeprefix("ci-kit ") for h in heading.split(", ")):
                marked = {k for k, out in tables[heading].items() if out}
                expected = set(contract.OUTPUT_KEYS.get(verb.split()[0], ()))  # status has no --output
                assert marked == expected, f"ci-kit {verb} --output: CONTRACT.md {marked}, code {expected}"


def test_results_serialise_to_the_contract():
    """The stages' result dataclasses give exactly the contract's fields (run's files
    are the pushed ones, with URLs, not the promotion's)."""
    from ci_kit import contract
    from ci_kit.build import BuiltFile, Manifest
    from ci_kit.jobs import Flow, JobTwo
    from ci_kit.promote import Promotion
    from ci_kit.push import PushResult
    from ci_kit.release import Spec
    from ci_kit.testreport import RunReport, RunResult

    spec = Spec("churn-model", "1.0")
    m = Manifest("churn-model", "1.0", "c" * 40, [BuiltFile("churn_model-1.0-py3-none-any.whl", "a" * 64, 10)])
    pushed = PushResult(m, "ci/unstable", [m.files[0].filename], [], {m.files[0].filename: "http://x/f.whl"})
    run = RunResult({"filename": m.files[0].filename, "kind": "wheel", "sha256": "a" * 64, "python": "3.11", "passed": True,
                     "counts": {"tests": 1, "failures": 0, "errors": 0, "skipped": 0}, "junit_path": "j.xml",
                     "record_path": "r.json", "message": "", "failed_tests": []})
    report = RunReport(spec, "c" * 40, [run])
    promo = Promotion(spec, "ci/unstable", "ci/stable", True, files=[{"filename": m.files[0].filename, "sha256": "a" * 64}])
    flow = Flow(pushed, JobTwo(report, promo), {"digest": "sha256:0"})

    def keys(shape: type) -> set[str]:
        return set(shape.__annotations__)

    assert set(m.to_json()) == keys(contract.BuildJson) and set(m.to_json()["files"][0]) == keys(contract.BuiltFileJson)
    assert set(pushed.to_json()) == keys(contract.PushJson) and set(pushed.to_json()["files"][0]) == keys(contract.PushedFileJson)
    assert set(report.to_json()) == keys(contract.RunReportJson) and set(run.to_json()) == keys(contract.OneRunJson)
    assert set(promo.to_json()) == keys(contract.PromoteJson)
    assert set(JobTwo(report, promo).to_json()) == keys(contract.JobTwoJson)
    assert set(flow.to_json()) == keys(contract.FlowJson)
    assert flow.to_json()["files"] == [{"filename": m.files[0].filename, "sha256": "a" * 64, "url": "http://x/f.whl"}]
    assert "image" not in Flow(pushed, JobTwo(report, promo)).to_json()
