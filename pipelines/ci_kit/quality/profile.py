"""The input profile of a CSV file the product names in its evaluation record
(`inputs.csv`): per column the missing-value rate, and the distinct categories of a text
column or the quantiles of a numeric one.

Read with the standard library's csv and statistics modules: ci-kit's base install has no
pandas, and a profile needs no more than one pass over the rows. The path must stay inside
the product's repository: a record is published on the index, and a profile of, say, a
secret file would publish its contents.
"""

from __future__ import annotations

import csv
import hashlib
import statistics
from pathlib import Path
from typing import Any

from ci_kit.quality.schema import MAX_CATEGORIES, SchemaError

MISSING = {"", "na", "n/a", "nan", "null", "none"}
QUANTILES = {"p05": 1, "p25": 5, "p50": 10, "p75": 15, "p95": 19}  # cut points of statistics.quantiles(n=20)


def inside(root: Path, name: str) -> Path:
    """The file `name` of the repository at root; SchemaError if it leaves it or is missing."""
    root = root.resolve()
    path = (root / name).resolve()
    if path != root and root not in path.parents:
        raise SchemaError("inputs.csv", f"{name!r} is outside the repository: name a file of the repository")
    if not path.is_file():
        raise SchemaError("inputs.csv", f"{name!r} is not a file of the repository (paths are relative to its root)")
    return path


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
    """One column's profile: missing rate, then quantiles if every present value is a number, else categories."""
    present = [v.strip() for v in values if v is not None and v.strip().lower() not in MISSING]
    out: dict[str, Any] = {"missing": round(1 - len(present) / len(values), 6) if values else 0.0}
    numbers = _numbers(present)
    if numbers is not None and numbers:
        cuts = statistics.quantiles(numbers, n=20, method="inclusive") if len(numbers) > 1 else [numbers[0]] * 19
        out["quantiles"] = {"min": min(numbers), **{k: round(cuts[i - 1], 6) for k, i in QUANTILES.items()}, "max": max(numbers)}
    else:
        out["categories"] = sorted(set(present))[:MAX_CATEGORIES]
    return out


def _numbers(present: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in present]
    except ValueError:
        return None
