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
    table = re.search(r"<!-- config-table.*?-->\n(.*?)\n<!-- /config-table -->", readme, re.S).group(1)
    assert table == markdown_table(), "README's table is stale: paste `ci-kit config --table` into it"


def test_readme_lists_every_exit_code():
    from ci_kit.errors import EXIT_CODES

    readme = (ROOT / "README.md").read_text()
    for code, text in EXIT_CODES.items():
        assert f"| {code} | {text} |" in readme


def test_help_imports_nothing_heavy():
    code = ("import sys; from ci_kit.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('requests', 'packaging', 'build', 'twine', 'urllib3') if m in sys.modules]\n"
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
