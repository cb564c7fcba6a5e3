"""Raw readers: values exactly as written, exact line numbers, bad records kept with a reason."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.errors import SourceError
from pipelines.readers import read_raw

KNOWN = ["order_id", "customer_id", "order_ts", "amount", "currency", "status"]
HEADER = b"order_id,customer_id,order_ts,amount,currency\n"


def _rows(frame: pl.DataFrame) -> list[dict]:
    return frame.to_dicts()


def test_clean_csv_fast_path_keeps_text_and_lines(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b"O1,C1,2024-01-01T00:00:00Z,12.50,USD\nO2,C2,2024-01-02,007,USD\n")
    raw = read_raw(p, KNOWN)
    assert raw.fast_path
    assert raw.frame["amount"].to_list() == ["12.50", "007"]  # text, untouched
    assert raw.frame["_source_line"].to_list() == [2, 3]
    assert raw.frame["_read_error"].null_count() == 2


def test_unknown_columns_are_listed_not_loaded(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"order_id,extra,amount\nO1,x,1\n")
    raw = read_raw(p, KNOWN)
    assert raw.columns == ["order_id", "amount"]
    assert raw.ignored_columns == ["extra"]
    assert "extra" not in raw.frame.columns


def test_ragged_lines_are_kept_with_their_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b"O1,C1,2024-01-01,1,USD\nO2,C2\nO3,C3,2024-01-01,1,USD,extra\nO4,C4,2024-01-01,1,USD\n")
    raw = read_raw(p, KNOWN)
    assert not raw.fast_path
    rows = _rows(raw.frame)
    assert [r["_source_line"] for r in rows] == [2, 3, 4, 5]
    assert [r["_read_error"] for r in rows] == [None, "RAGGED_ROW", "RAGGED_ROW", None]
    assert rows[1]["_raw_line"] == "O2,C2"
    assert rows[2]["_raw_line"] == "O3,C3,2024-01-01,1,USD,extra"
    assert rows[3]["order_id"] == "O4"


def test_invalid_utf8_is_kept_as_escaped_text(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b"O1,C\xff\xfe,2024-01-01,1,USD\nO2,C2,2024-01-01,1,USD\n")
    raw = read_raw(p, KNOWN)
    rows = _rows(raw.frame)
    assert rows[0]["_read_error"] == "INVALID_UTF8"
    assert rows[0]["_raw_line"] == "O1,C\\xff\\xfe,2024-01-01,1,USD"
    assert rows[1]["customer_id"] == "C2" and rows[1]["_source_line"] == 3


def test_quoted_newline_keeps_the_line_where_the_record_starts(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b'O1,"C\n1",2024-01-01,1,USD\nO2,C2,2024-01-01,1,USD\n\n')
    raw = read_raw(p, KNOWN)
    rows = _rows(raw.frame)
    assert [r["_source_line"] for r in rows] == [2, 4]
    assert rows[0]["customer_id"] == "C\n1"
    assert raw.blank_lines == 1


def test_bom_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n") + b"O1,C1,2024-01-01,1,USD\r\n")
    raw = read_raw(p, KNOWN)
    assert raw.columns[0] == "order_id"
    assert raw.frame["currency"].to_list() == ["USD"]


def test_jsonl_numbers_become_text_and_bad_lines_are_kept(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"order_id": "O1", "amount": 12.50, "currency": "USD"}\nnot json\n[1]\n{"order_id": 7, "amount": "1,5"}\n')
    raw = read_raw(p, KNOWN)
    rows = _rows(raw.frame)
    assert [r["_read_error"] for r in rows] == [None, "MALFORMED_RECORD", "MALFORMED_RECORD", None]
    assert rows[0]["amount"] == "12.50"  # the number exactly as written
    assert rows[3]["order_id"] == "7" and rows[3]["amount"] == "1,5"
    assert [r["_source_line"] for r in rows] == [1, 2, 3, 4]


def test_parquet_keeps_types_and_row_numbers(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"order_id": ["O1", "O2"], "amount": [1.5, 2.0], "other": [1, 2]}), p)
    raw = read_raw(p, KNOWN)
    assert raw.frame.schema["amount"] == pl.Float64
    assert raw.frame["_source_line"].to_list() == [1, 2]
    assert raw.ignored_columns == ["other"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("broken.parquet", b"PAR1 this is not parquet", "not a readable Parquet file"),
        ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8"),
        ("orders.txt", b"a,b\n", "unsupported file type"),
    ],
)
def test_unreadable_files_stop_with_the_file_named(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SourceError, match=message) as err:
        read_raw(p, KNOWN)
    assert str(p) in str(err.value)


def test_truncated_parquet_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"order_id": [f"O{i}" for i in range(1000)]}), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read_raw(p, KNOWN)
