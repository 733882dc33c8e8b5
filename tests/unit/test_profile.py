"""The input profile ci-kit computes from a reference file the product names: a table
written as CSV and as Parquet gives the same profile (numeric vs categorical decided by the
same rule on both), and a Parquet file without pyarrow, or a broken one, is one line."""

from __future__ import annotations

import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_kit.errors import UsageError
from ci_kit.quality import profile, record
from ci_kit.quality.schema import SchemaError, validate

NAN, INF = float("nan"), float("inf")


def _table() -> pa.Table:
    """Ten rows of the kinds a reference set holds, with the ways a value can be missing."""
    return pa.table({
        "tenure": pa.array([1, 5, None, 12, 30, 7, 7, 60, 2, 44], pa.int64()),
        "charges": [10.5, NAN, 20.25, None, 99.0, 15.0, 15.0, 70.75, 33.0, 1e-7],
        "contract": ["month", " year ", "NA", None, "month", "two-year", "élite", "N/A", "year", "null"],
        "zip": ["01234", "10115", "", "80331", "10115", "20095", "50667", "None", "01234", "10115"],
        "churned": [True, False, False, None, True, False, False, False, True, False],
        "plan": pa.array(["a", "b", "a", "a", None, "b", "c", "a", "b", "a"]).dictionary_encode(),
        "since": [datetime.date(2026, 1, d) for d in (1, 2, 3, 1, 2, 3, 1, 2, 3, 1)],
        "score": [0.5, INF, 0.25, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5],
        "codes": ["1_000", "2", "3", "4", "5", "6", "7", "8", "9", "0x10"],
        "empty": pa.array([None] * 10, pa.float64()),
    })


def _both(tmp_path: Path, table: pa.Table) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table's profile from its CSV (as pyarrow's CSV writer writes it) and from its Parquet file."""
    pa_csv.write_csv(table, tmp_path / "ref.csv")
    pq.write_table(table, tmp_path / "ref.parquet")
    return (profile.profile_csv(tmp_path / "ref.csv", "ref.csv"),
            profile.profile_parquet(tmp_path / "ref.parquet", "ref.parquet"))


def test_the_same_table_as_csv_and_as_parquet_has_the_same_profile(tmp_path: Path) -> None:
    from_csv, from_parquet = _both(tmp_path, _table())
    assert from_parquet["source"] == "ref.parquet" and len(from_parquet["sha256"]) == 64
    assert from_parquet["sha256"] != from_csv["sha256"]  # each is the sha256 of its own file
    drop = ("source", "sha256")
    assert {k: v for k, v in from_parquet.items() if k not in drop} == {k: v for k, v in from_csv.items() if k not in drop}
    assert list(from_parquet["columns"]) == list(_table().column_names)  # in the file's order
    assert validate({"schema": 1, "metrics": {}, "inputs": from_parquet})["inputs"] == from_parquet


_TEXTS = st.sampled_from(["", " ", "NA", "n/a", "None", "nan", "a", " b", "B", "é", "1", "01", "-2.5", "1e3", "inf",
                          "x y", "+3", ".5", "5.", "1e400", "5e", "-0"])


def _rows(n: int) -> st.SearchStrategy[tuple[list[Any], ...]]:
    return st.tuples(*(st.lists(st.none() | values, min_size=n, max_size=n) for values in (
        _TEXTS, st.integers(-2**63, 2**63 - 1), st.floats(width=64), st.booleans())))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40).flatmap(_rows))
def test_any_table_as_csv_and_as_parquet_has_the_same_columns(columns: tuple[list[Any], ...]) -> None:
    """Whatever the values (missing tokens, numbers as text, NaN, infinities, integers past
    2**53, large floats whose quantiles only agree if computed by one formula), the two
    readers agree."""
    text, ints, floats, flags = columns
    table = pa.table({"s": pa.array(text, pa.string()), "i": pa.array(ints, pa.int64()),
                      "f": pa.array(floats, pa.float64()), "b": pa.array(flags, pa.bool_())})
    with tempfile.TemporaryDirectory() as folder:
        from_csv, from_parquet = _both(Path(folder), table)
    assert from_csv["columns"] == from_parquet["columns"]


def test_what_each_column_is_read_as(tmp_path: Path) -> None:
    """Not only equal: right. Numbers are finite decimals whatever the column's type; the
    missing tokens, NaN and nulls are missing; the rest is categories, trimmed and sorted."""
    _, p = _both(tmp_path, _table())
    cols, rows = p["columns"], p["rows"]
    assert rows == 10
    assert cols["tenure"] == {"missing": 0.1, "quantiles": {"min": 1.0, "p05": 1.4, "p25": 5.0, "p50": 7.0,
                                                            "p75": 30.0, "p95": 53.6, "max": 60.0}}
    assert cols["charges"]["missing"] == 0.2 and cols["charges"]["quantiles"]["min"] == 1e-7  # NaN and null
    assert cols["contract"] == {"missing": 0.4, "categories": ["month", "two-year", "year", "élite"]}
    # strings that all read as numbers are numeric, as they are in a CSV (leading zeros and all)
    assert cols["zip"]["missing"] == 0.2 and cols["zip"]["quantiles"]["min"] == 1234.0
    assert cols["churned"] == {"missing": 0.1, "categories": ["false", "true"]}
    assert cols["plan"] == {"missing": 0.1, "categories": ["a", "b", "c"]}
    assert cols["since"] == {"missing": 0.0, "categories": ["2026-01-01", "2026-01-02", "2026-01-03"]}
    assert cols["score"] == {"missing": 0.0, "categories": ["0.25", "0.5", "1", "inf"]}  # an infinity is not a number
    assert cols["codes"]["categories"][:2] == ["0x10", "1_000"]  # float() would take 1_000, pyarrow not: neither does
    assert cols["empty"] == {"missing": 1.0, "categories": []}


def test_a_single_row_and_a_numeric_only_file(tmp_path: Path) -> None:
    from_csv, from_parquet = _both(tmp_path, pa.table({"x": [3.5], "n": pa.array([2], pa.int8())}))
    assert from_csv["columns"] == from_parquet["columns"]
    assert from_parquet["columns"]["x"]["quantiles"] == dict.fromkeys(("min", "p05", "p25", "p50", "p75", "p95", "max"), 3.5)


def _record(clone: Path, inputs: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    metrics_file = clone / "metrics.json"
    metrics_file.write_text(json.dumps({"schema": 1, "metrics": {"auc": 0.8}, "inputs": inputs}))
    return record.read(metrics_file, clone)


def test_the_evaluation_record_carries_the_profile_of_the_parquet_file_it_names(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    pq.write_table(_table(), tmp_path / "data" / "ref.parquet")
    evaluation, problem = _record(tmp_path, {"parquet": "data/ref.parquet"})
    assert problem == ""
    assert evaluation is not None and evaluation["inputs"]["source"] == "data/ref.parquet"
    assert evaluation["inputs"]["columns"]["contract"]["categories"] == ["month", "two-year", "year", "élite"]
    assert _record(tmp_path, {"parquet": "../ref.parquet"}) == (
        None, "inputs.parquet '../ref.parquet' is outside the repository: name a file of the repository")


@pytest.mark.parametrize("content", [b"", b"tenure,contract\n1,month\n", b"PAR1" + b"\0" * 40 + b"PAR1"],
                         ids=["empty", "a-csv", "corrupt"])
def test_a_file_that_is_not_parquet_is_one_line_naming_it(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "ref.parquet").write_bytes(content)
    evaluation, problem = _record(tmp_path, {"parquet": "ref.parquet"})
    assert evaluation is None
    assert problem.startswith("inputs.parquet ref.parquet is not a readable Parquet file ("), problem
    assert "\n" not in problem


def test_an_empty_parquet_table_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": pa.array([], pa.int64())}), tmp_path / "ref.parquet")
    with pytest.raises(SchemaError, match=r"inputs\.parquet ref\.parquet has no data rows"):
        profile.profile_parquet(tmp_path / "ref.parquet", "ref.parquet")


def test_without_pyarrow_a_parquet_file_is_a_usage_error_saying_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq.write_table(_table(), tmp_path / "ref.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    with pytest.raises(UsageError) as exc:
        _record(tmp_path, {"parquet": "ref.parquet"})
    assert exc.value.exit_code == 2 and "\n" not in exc.value.message
    assert exc.value.message.endswith("needs pyarrow, which is not installed: install ci-kit[quality]")
    (tmp_path / "ref.csv").write_text("contract\nmonth\n")
    evaluation, _ = _record(tmp_path, {"csv": "ref.csv"})  # a CSV still needs nothing beyond ci-kit
    assert evaluation is not None and evaluation["inputs"]["columns"] == {"contract": {"missing": 0.0, "categories": ["month"]}}


def test_the_record_names_one_file_or_a_profile() -> None:
    with pytest.raises(SchemaError, match="inputs must have exactly one of csv, parquet"):
        validate({"schema": 1, "metrics": {}, "inputs": {"csv": "a.csv", "parquet": "a.parquet"}})
    with pytest.raises(SchemaError, match=r"inputs\.parquet must be a path in the repository"):
        validate({"schema": 1, "metrics": {}, "inputs": {"parquet": 3}})
