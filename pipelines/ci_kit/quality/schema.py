"""The evaluation record a product writes at $CI_KIT_METRICS_FILE, and its check.

Versioned by its `schema` field (SCHEMA); docs/quality.md documents it. The check is
strict and names the first bad field, because a record that half-parses would make the
gate compare the wrong numbers. A flat object of numbers without `schema` (what products
wrote before the schema existed) is read as `metrics` alone.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise
from typing import Any

from ci_kit.quality.rules import MEASURES

SCHEMA = 1
MAX_SCORES = 50_000  # raw scores kept in the record; more should be sent as a histogram
MAX_CATEGORIES = 1_000
_SHA = re.compile(r"^[0-9a-f]{64}$")
_TOP = {"schema", "metrics", "responses", "inputs"}
KINDS = ("probability", "value")
_SHIFT = {"measure", "bins", "baseline", "value"}
_AGAINST = {"index", "version", "responses"}


class SchemaError(ValueError):
    """A malformed evaluation record: `field` names where, str(self) says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        field = field if field.isprintable() else repr(field)  # the error stays one line
        super().__init__(f"{field} {problem}")
        self.field = field


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(data: Any, *, stored: bool = False) -> dict[str, Any]:
    """The record in its normal form, or SchemaError naming the first bad field. `shift`
    (the shift the test stage measured, quality/shift.py) is ci-kit's own field: allowed
    only in a record read back from a test record (stored), never in the product's file."""
    if not isinstance(data, dict):
        raise SchemaError("the file", "is not a JSON object")
    if "schema" not in data and data and all(_number(v) for v in data.values()):
        data = {"schema": SCHEMA, "metrics": data}  # the flat form: metrics only
    if data.get("schema") != SCHEMA:
        raise SchemaError("schema", f"must be {SCHEMA}, got {_shown(data.get('schema'))}")
    if "shift" in data and not stored:
        raise SchemaError("shift", "is written by ci-kit's test stage, not by the product: remove it from the file")
    unknown = sorted(set(data) - _TOP - ({"shift"} if stored else set()))
    if unknown:
        raise SchemaError(unknown[0], f"is not a field of the schema (fields: {', '.join(sorted(_TOP))})")
    out: dict[str, Any] = {"schema": SCHEMA, "metrics": _metrics(data.get("metrics"))}
    if data.get("responses") is not None:
        out["responses"] = _responses(data["responses"])
    if data.get("inputs") is not None:
        out["inputs"] = _inputs(data["inputs"])
    if stored and "shift" in data:
        if "responses" not in out:
            raise SchemaError("shift", "needs responses: it is the shift of the responses")
        out["shift"] = _shift(data["shift"])
    return out


def _shift(s: Any) -> list[dict[str, Any]]:
    """Strict, like the rest: a stored shift the gate takes instead of measuring must say
    exactly what it was measured against."""
    if not isinstance(s, list):
        raise SchemaError("shift", "must be a list of measured shifts")
    for i, e in enumerate(s):
        where = f"shift[{i}]"
        if not isinstance(e, dict) or set(e) != _SHIFT:
            raise SchemaError(where, f"must be an object with exactly {', '.join(sorted(_SHIFT))}")
        if e["measure"] not in MEASURES:
            raise SchemaError(f"{where}.measure", f"must be one of {', '.join(MEASURES)}, got {_shown(e['measure'])}")
        if not (isinstance(e["bins"], int) and not isinstance(e["bins"], bool) and 2 <= e["bins"] <= 100):
            raise SchemaError(f"{where}.bins", f"must be an integer from 2 to 100, got {_shown(e['bins'])}")
        if not _number(e["value"]) or e["value"] < 0:
            raise SchemaError(f"{where}.value", f"must be a finite number >= 0, got {_shown(e['value'])}")
        b = e["baseline"]
        if not isinstance(b, dict) or set(b) != _AGAINST or not all(isinstance(b[k], str) and b[k] for k in _AGAINST):
            raise SchemaError(f"{where}.baseline", "must be an object {index, version, responses} of non-empty strings")
        if not _SHA.match(b["responses"]):
            raise SchemaError(f"{where}.baseline.responses", "must be the sha256 (64 hex digits) of the baseline's responses")
    return s


def _metrics(m: Any) -> dict[str, float]:
    if not isinstance(m, dict):
        raise SchemaError("metrics", "must be an object of name -> number")
    for name, v in m.items():
        _name("metrics", name)
        if not _number(v):
            raise SchemaError(f"metrics.{name}", f"must be a finite number, got {_shown(v)}")
    return dict(m)


def _name(where: str, name: str) -> None:
    """Names end up in one-line messages and tables: printable text of sane length only."""
    if not name or not name.isprintable() or len(name) > 200:
        raise SchemaError(f"{where}[{name[:40]!r}]", "must be named with 1 to 200 printable characters")


def _reference(r: Any, where: str) -> dict[str, Any]:
    if not isinstance(r, dict) or not isinstance(r.get("sha256"), str) or not _SHA.match(r["sha256"]):
        raise SchemaError(f"{where}.reference.sha256", "must be the sha256 (64 hex digits) of the reference set")
    return r


def _responses(r: Any) -> dict[str, Any]:
    if not isinstance(r, dict):
        raise SchemaError("responses", "must be an object")
    kind = r.get("kind", "probability")
    if kind not in KINDS:
        raise SchemaError("responses.kind", f"must be one of {', '.join(KINDS)}, got {_shown(kind)}")
    out: dict[str, Any] = {"kind": kind, "reference": _reference(r.get("reference"), "responses")}
    if ("scores" in r) == ("histogram" in r):
        raise SchemaError("responses", "must have either scores or histogram (one of them)")
    if "scores" in r:
        s = r["scores"]
        if not isinstance(s, list) or not s:
            raise SchemaError("responses.scores", "must be a non-empty list of numbers")
        if len(s) > MAX_SCORES:
            raise SchemaError("responses.scores", f"has {len(s)} values, more than {MAX_SCORES}: send a histogram instead")
        bad = next((i for i, v in enumerate(s) if not _number(v)), None)
        if bad is not None:
            raise SchemaError(f"responses.scores[{bad}]", f"must be a finite number, got {_shown(s[bad])}")
        out["scores"] = s
    else:
        out["histogram"] = _histogram(r["histogram"])
    if kind == "probability":
        lo, hi = _range(out)
        if lo < 0 or hi > 1:
            raise SchemaError("responses", "of kind probability must lie in [0, 1] (use kind \"value\" for other responses)")
    return out


def _histogram(h: Any) -> dict[str, list[Any]]:
    if not isinstance(h, dict):
        raise SchemaError("responses.histogram", "must be an object {edges, counts}")
    edges, counts = h.get("edges"), h.get("counts")
    if not isinstance(edges, list) or len(edges) < 2 or not all(_number(e) for e in edges):
        raise SchemaError("responses.histogram.edges", "must be a list of at least 2 numbers")
    if any(b <= a for a, b in pairwise(edges)):
        raise SchemaError("responses.histogram.edges", "must be strictly increasing")
    if not isinstance(counts, list) or len(counts) != len(edges) - 1:
        raise SchemaError("responses.histogram.counts", f"must be a list of {len(edges) - 1} counts (one per bin)")
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) or not sum(counts):
        raise SchemaError("responses.histogram.counts", "must be non-negative integers, not all zero")
    return {"edges": edges, "counts": counts}


def _range(resp: dict[str, Any]) -> tuple[float, float]:
    if "scores" in resp:
        return min(resp["scores"]), max(resp["scores"])
    return resp["histogram"]["edges"][0], resp["histogram"]["edges"][-1]


FILES = ("csv", "parquet")  # inputs.csv / inputs.parquet: a file of the repository ci-kit profiles (profile.py)


def _inputs(i: Any) -> dict[str, Any]:
    if not isinstance(i, dict):
        raise SchemaError("inputs", "must be an object with csv or parquet (a file of the repository) or columns (a profile)")
    given = [k for k in (*FILES, "columns") if k in i]
    if len(given) != 1:
        raise SchemaError("inputs", "must have exactly one of csv, parquet (ci-kit profiles the file) or columns (a profile)")
    if given[0] in FILES:
        if not isinstance(i[given[0]], str) or not i[given[0]]:
            raise SchemaError(f"inputs.{given[0]}", "must be a path in the repository")
        return {given[0]: i[given[0]]}
    cols = i["columns"]
    if not isinstance(cols, dict) or not cols:
        raise SchemaError("inputs.columns", "must be an object of column name -> profile")
    for name, p in cols.items():
        _name("inputs.columns", name)
        _column(f"inputs.columns.{name}", p)
    return {k: v for k, v in i.items() if k in ("columns", "rows", "source", "sha256")}


def _column(where: str, p: Any) -> None:
    if not isinstance(p, dict):
        raise SchemaError(where, "must be an object {missing, categories | quantiles}")
    if not _number(p.get("missing")) or not 0 <= p["missing"] <= 1:
        raise SchemaError(f"{where}.missing", f"must be a rate between 0 and 1, got {_shown(p.get('missing'))}")
    cats = p.get("categories")
    if cats is not None and (not isinstance(cats, list) or not all(isinstance(c, str) for c in cats)
                             or len(cats) > MAX_CATEGORIES):
        raise SchemaError(f"{where}.categories", f"must be a list of at most {MAX_CATEGORIES} strings")
    q = p.get("quantiles")
    if q is not None and (not isinstance(q, dict) or not all(_number(v) for v in q.values())):
        raise SchemaError(f"{where}.quantiles", "must be an object of name -> number")
