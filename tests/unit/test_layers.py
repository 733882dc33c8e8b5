"""The two layers stay apart: unit tests are never marked slow, the end-to-end suites
that start a real part always are (tests/conftest.py marks them)."""

from __future__ import annotations

import pytest


def test_this_layer_is_not_slow(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("slow") is None


def test_the_e2e_conftest_is_importable_by_name() -> None:
    import conftest  # the end-to-end suites do `from conftest import ...`

    assert hasattr(conftest, "run_cikit") and "devpi" in conftest.REAL_PARTS


def test_no_fixture_of_this_layer_is_taken_for_a_real_part() -> None:
    """A unit fixture named like a real part would mark every test using it slow, and
    `-m "not slow"` would silently skip them (it did: the FakeIndex `fake`)."""
    import ast
    from pathlib import Path

    import conftest

    tree = ast.parse(Path(__file__).with_name("conftest.py").read_text())
    fixtures = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                and any("fixture" in ast.unparse(d) for d in node.decorator_list)}
    assert "fake" in fixtures and not fixtures & conftest.REAL_PARTS
