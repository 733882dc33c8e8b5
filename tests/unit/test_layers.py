"""The two layers stay apart: unit tests are never marked slow, the end-to-end suites
that start a real part always are (tests/conftest.py marks them)."""

from __future__ import annotations

import pytest


def test_this_layer_is_not_slow(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("slow") is None


def test_the_e2e_conftest_is_importable_by_name() -> None:
    import conftest  # the end-to-end suites do `from conftest import ...`

    assert hasattr(conftest, "run_cikit") and "devpi" in conftest.REAL_PARTS
