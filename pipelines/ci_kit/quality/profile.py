"""The input profile of a CSV or Parquet file the product names in its evaluation record
(`inputs.csv`, `inputs.parquet`): per column the missing-value rate, and the distinct
categories of a text column or the quantiles of a numeric one.

A CSV is read with the standard library's csv module: ci-kit's base install has no pandas,
and a profile needs no more than one pass over the rows. A Parquet
file is read with pyarrow (the `quality` extra), imported only when one is named so that
the CLI's start-up stays lean; its counts, distinct values and quantiles are pyarrow.compute's.

Both give the same profile for the same table, by one rule stated on the text a CSV holds:
a value is missing if it is null or its text (trimmed) is one of MISSING; a column is
numeric if every present value is a finite decimal number (NUMBER, the same pattern for
both), else categorical. So a Parquet column of strings that all read as numbers is numeric,
as it would be in the CSV; a numeric Parquet column holding NaN counts it as missing, and
one holding an infinity is profiled as text (categories), as its CSV would be. Booleans,
dates and times count as their text as pyarrow's CSV writer writes it (`true`, `2026-12-01`).

The path must stay inside the product's repository: a record is published on the index,
and a profile of, say, a secret file would publish its contents.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
from pathlib import Path
from typing import Any

from ci_kit.errors import UsageError
from ci_kit.quality.schema import MAX_CATEGORIES, SchemaError

MISSING = {"", "na", "n/a", "nan", "null", "none"}
# a decimal number: what Python's float() and pyarrow's string-to-double cast both read the
# same way (ASCII digits only; no `1_000`, `0x10`, `inf`, which only one of them would take)
NUMBER = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
_NUMBER = re.compile(NUMBER, re.ASCII)
QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}


def inside(root: Path, name: str, field: str = "inputs.csv") -> Path:
    """The file `name` of the repository at root; SchemaError if it leaves it or is missing."""
    root = root.resolve()
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise SchemaError(field, f"{name!r} is outside the repository: name a file of the repository")
    if not path.is_file():
        raise SchemaError(field, f"{name!r} is not a file of the repository (paths are relative to its root)")
    return path


def _rate(present: int, total: int) -> float:
    return round(1 - present / total, 6) if total else 0.0


def _quantiles(low: float, cuts: list[float], high: float) -> dict[str, float]:
    """min, p05 ... p95 (rounded to 6 decimals, for people to read), max."""
    return {"min": float(low), **{k: round(c, 6) for k, c in zip(QUANTILES, cuts, strict=True)}, "max": float(high)}


def _linear(ordered: list[float], q: float) -> float:
    """The q-quantile by linear interpolation between the closest ranks, computed exactly as
    pyarrow.compute.quantile(interpolation="linear") computes it. Written out rather than
    statistics.quantiles(method="inclusive"), the same interpolation by another formula, whose
    results differ from pyarrow's in the last bits; that would make a CSV and a Parquet file of
    one table disagree (rounding hides it only for small values)."""
    index = (len(ordered) - 1) * q
    lower = int(index)
    fraction = index - lower
    if fraction == 0:
        return ordered[lower]
    return fraction * ordered[lower + 1] + (1 - fraction) * ordered[lower]


def profile_csv(path: Path, source: str = "") -> dict[str, Any]:
    """The profile of one CSV file with a header row."""
    raw = path.read_bytes()
    try:
        rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SchemaError("inputs.csv", f"{source or path.name} is not a UTF-8 CSV file with a header row ({exc})") from None
    if not rows:
        raise SchemaError("inputs.csv", f"{source or path.name} has no data rows")
    columns = {name: column([r.get(name) for r in rows]) for name in rows[0] if name is not None}
    return {"source": source or path.name, "sha256": hashlib.sha256(raw).hexdigest(), "rows": len(rows), "columns": columns}


def column(values: list[str | None]) -> dict[str, Any]:
    """One CSV column's profile: missing rate, then quantiles if every present value is a
    finite number, else categories."""
    present = [v.strip() for v in values if v is not None and v.strip().lower() not in MISSING]
    out: dict[str, Any] = {"missing": _rate(len(present), len(values))}
    numbers = [float(v) for v in present] if present and all(_NUMBER.fullmatch(v) for v in present) else []
    if numbers and all(math.isfinite(x) for x in numbers):
        numbers.sort()
        out["quantiles"] = _quantiles(numbers[0], [_linear(numbers, q) for q in QUANTILES.values()], numbers[-1])
    else:
        out["categories"] = sorted(set(present))[:MAX_CATEGORIES]
    return out


def _pyarrow() -> tuple[Any, Any, Any]:
    """pyarrow, pyarrow.compute, pyarrow.parquet; imported here only, when a Parquet file is named."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise UsageError("reading a Parquet reference file (inputs.parquet) needs pyarrow, which is not installed: "
                         "install ci-kit[quality]", "pip install 'ci-kit[quality]' (scipy, matplotlib and pyarrow)") from None
    return pyarrow, pyarrow.compute, pyarrow.parquet


def profile_parquet(path: Path, source: str = "") -> dict[str, Any]:
    """The profile of one Parquet file, the same as that of the same table written as CSV."""
    pa, _pc, pq = _pyarrow()
    name = source or path.name
    raw = path.read_bytes()  # read once: the sha256 is of the very bytes profiled
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SchemaError("inputs.parquet", f"{name} is not a readable Parquet file ({first})") from None
    if table.num_rows == 0:
        raise SchemaError("inputs.parquet", f"{name} has no data rows")
    columns = {str(n): _arrow_column(col) for n, col in zip(table.column_names, table.columns, strict=True)}
    return {"source": name, "sha256": hashlib.sha256(raw).hexdigest(), "rows": table.num_rows, "columns": columns}


def _arrow_column(col: Any) -> dict[str, Any]:
    """One Parquet column's profile, by the rule of the module docstring."""
    pa, pc, _pq = _pyarrow()
    kind = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = pc.cast(col, pa.float64(), safe=False)  # integers past 2**53 round, as float() rounds them in a CSV
        present = pc.filter(numbers, pc.invert(pc.is_nan(numbers)))  # a null mask entry drops the row too
        if pc.all(pc.is_finite(present)).as_py() is not False:
            return _numeric(present, len(col))
    try:
        text = pc.cast(col, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        # lists, structs, maps, binary that is not UTF-8: no CSV holds them; only the missing rate means something
        return {"missing": _rate(len(col) - col.null_count, len(col))}
    return _arrow_text(text, len(col))


def _numeric(present: Any, total: int) -> dict[str, Any]:
    """Missing rate and quantiles of a float64 array without nulls or NaN (all missing: no categories, as in CSV)."""
    _pa, pc, _pq = _pyarrow()
    if len(present) == 0:
        return {"missing": _rate(0, total), "categories": []}
    low_high = pc.min_max(present)
    # linear interpolation between the closest ranks (_linear for a CSV)
    cuts = pc.quantile(present, q=list(QUANTILES.values()), interpolation="linear").to_pylist()
    return {"missing": _rate(len(present), total),
            "quantiles": _quantiles(low_high["min"].as_py(), cuts, low_high["max"].as_py())}


def _arrow_text(text: Any, total: int) -> dict[str, Any]:
    """A column as text, read as column() reads a CSV column."""
    pa, pc, _pq = _pyarrow()
    values = pc.utf8_trim_whitespace(pc.drop_null(text))
    present = pc.filter(values, pc.invert(pc.is_in(pc.utf8_lower(values), value_set=pa.array(sorted(MISSING)))))
    if len(present) and pc.all(pc.match_substring_regex(present, f"^(?:{NUMBER})$")).as_py():
        numbers = pc.cast(present, pa.float64())
        if pc.all(pc.is_finite(numbers)).as_py():
            return _numeric(numbers, total)
    distinct = pc.unique(present)
    categories = pc.take(distinct, pc.array_sort_indices(distinct))  # UTF-8 byte order: Python's str order
    return {"missing": _rate(len(present), total), "categories": categories.to_pylist()[:MAX_CATEGORIES]}
