"""What `[tool.ci-kit.quality]` asks of a release, read into a typed object.

The table is one configuration key (`quality`, kind table) in config.py's single key
table, so the environment (`CI_KIT_QUALITY` as JSON) and the flag (`--quality JSON`)
override it as a whole, like every other key. `problem()` is that key's check: a typo in
a bound is a configuration error (exit 2) before any work, not a gate that never fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MEASURES = ("psi", "ks", "wasserstein")
_TOP = {"baseline", "headline", "metrics", "responses", "inputs"}
_METRIC = {"min", "max", "max-drop", "max-drop-relative", "higher-is-better"}
_RESPONSES = {"measure", "max-shift", "undecided", "max-undecided", "bins"}
_INPUTS = {"new-categories", "max-missing-increase"}
_NOT_NUMBERS = {"higher-is-better", "measure", "undecided", "baseline", "headline", "new-categories", "bins", "metrics",
                "responses", "inputs"}


@dataclass(frozen=True)
class MetricRule:
    name: str
    min: float | None = None
    max: float | None = None
    max_drop: float | None = None  # absolute, in the metric's units
    max_drop_relative: float | None = None  # a fraction of the baseline's value
    higher_is_better: bool = True


@dataclass(frozen=True)
class Rules:
    baseline: str = "stable"  # stable | testing | none | USER/INDEX
    headline: str = ""
    metrics: tuple[MetricRule, ...] = ()
    measure: str = "psi"
    max_shift: float | None = None
    bins: int = 10
    undecided: tuple[float, float] = (0.4, 0.6)
    max_undecided: float | None = None
    refuse_new_categories: bool = False
    max_missing_increase: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def active(self) -> bool:
        """Whether any check is configured (else the gate only reports)."""
        return bool(self.metrics or self.max_shift is not None or self.max_undecided is not None
                    or self.refuse_new_categories or self.max_missing_increase is not None)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def problem(table: Any) -> str | None:
    """Why the table is not a valid quality configuration, or None."""
    try:
        parse(table)
    except ValueError as exc:
        return str(exc)
    return None


def _keys(where: str, t: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(t, dict):
        raise ValueError(f"a table at {where}")
    bad = sorted(set(t) - allowed)
    if bad:
        raise ValueError(f"a table whose keys are {', '.join(sorted(allowed))} ({where}.{bad[0]} is not one)")
    for k, v in t.items():
        if k not in _NOT_NUMBERS and not _num(v):
            raise ValueError(f"a number at {where}.{k}, got {v!r}")
    return t


def parse(table: Any) -> Rules:
    """The rules of a `[tool.ci-kit.quality]` table; ValueError says what is wrong where."""
    t = _keys("quality", table or {}, _TOP)
    baseline = t.get("baseline", "stable")
    if not isinstance(baseline, str) or not (baseline in ("stable", "testing", "none") or baseline.count("/") == 1):
        raise ValueError(f"quality.baseline: one of stable, testing, none or an index USER/INDEX, got {baseline!r}")
    metrics = []
    table_of_metrics = t.get("metrics", {})
    if not isinstance(table_of_metrics, dict):
        raise ValueError("a table of metric name -> bounds at quality.metrics")
    for name, given in table_of_metrics.items():
        m = _keys(f"quality.metrics.{name}", given, _METRIC)
        hib = m.get("higher-is-better", True)
        if not isinstance(hib, bool):
            raise ValueError(f"true or false at quality.metrics.{name}.higher-is-better, got {hib!r}")
        metrics.append(MetricRule(name, m.get("min"), m.get("max"), m.get("max-drop"), m.get("max-drop-relative"), hib))
    r = _keys("quality.responses", t.get("responses", {}), _RESPONSES)
    measure = r.get("measure", "psi")
    if measure not in MEASURES:
        raise ValueError(f"one of {', '.join(MEASURES)} at quality.responses.measure, got {measure!r}")
    band = r.get("undecided", [0.4, 0.6])
    if not (isinstance(band, list) and len(band) == 2 and all(_num(x) for x in band) and 0 <= band[0] < band[1] <= 1):
        raise ValueError(f"two numbers [low, high] with 0 <= low < high <= 1 at quality.responses.undecided, got {band!r}")
    bins = r.get("bins", 10)
    if not (isinstance(bins, int) and not isinstance(bins, bool) and 2 <= bins <= 100):
        raise ValueError(f"an integer from 2 to 100 at quality.responses.bins, got {bins!r}")
    i = _keys("quality.inputs", t.get("inputs", {}), _INPUTS)
    new = i.get("new-categories", "allow")
    if new not in ("allow", "refuse"):
        raise ValueError(f"allow or refuse at quality.inputs.new-categories, got {new!r}")
    headline = t.get("headline", "")
    if not isinstance(headline, str):
        raise ValueError(f"a metric name at quality.headline, got {headline!r}")
    return Rules(baseline, headline, tuple(metrics), measure, r.get("max-shift"), bins, (band[0], band[1]),
                 r.get("max-undecided"), new == "refuse", i.get("max-missing-increase"), raw=dict(t))
