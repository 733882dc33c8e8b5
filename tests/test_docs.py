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
