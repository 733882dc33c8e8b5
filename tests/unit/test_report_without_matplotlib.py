"""`ci-kit report` runs after a promotion in the CI front ends: without the optional
matplotlib it still writes the page (tables, profile, promotions) with a note in place
of each plot, and never fails the job that already promoted."""

from __future__ import annotations

import pytest

from ci_kit.config import QualitySettings
from ci_kit.quality import plots, report
from ci_kit.quality.history import History, Version


def _history() -> History:
    ev = {"metrics": {"auc": 0.8}, "responses": {"kind": "probability", "scores": [0.1, 0.9, 0.7],
                                                 "reference": {"name": "ref", "sha256": "a" * 64}}}
    return History("churn-model", {"stable": "ci/stable"}, "auc",
                   [Version("1.0.0", "stable", {"auc": 0.8}, ev,
                            [{"to": "ci/stable", "by": "ci", "at": "2026-12-01T00:00:00Z", "forced": False}])])


def test_the_page_is_written_with_notes_instead_of_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plots, "available", lambda: False)
    page = report.html(_history(), QualitySettings(rules={}))
    assert "<img" not in page
    assert "no plot, matplotlib is not installed" in page
    assert "1.0.0" in page and "ci/stable" in page  # the table and the promotions are still there
