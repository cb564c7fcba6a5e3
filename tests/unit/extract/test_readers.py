"""Raw readers: values exactly as written, exact line numbers, bad records kept with a reason."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import random
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.errors import ReconciliationError, SourceError
from pipelines.extract import csv_reader, readers, streams
from pipelines.extract.readers import LINEAGE, ReadOptions, file_format, read_raw

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
    p.write_bytes(
        HEADER
        + b"O1,C1,2024-01-01,1,USD\nO2,C2\nO3,C3,2024-01-01,1,USD,extra\nO4,C4,2024-01-01,1,USD\n"
    )
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
    p.write_bytes(
        b'{"order_id": "O1", "amount": 12.50, "currency": "USD"}\nnot json\n[1]\n{"order_id": 7, "amount": "1,5"}\n'
    )
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
def test_unreadable_files_stop_with_the_file_named(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
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


# --------------------------------------------------------------------------------------------
# Stray quotes: one bad line costs one line


def _physical_lines(data: bytes) -> int:
    """Independent count: newlines, plus a last line without one."""
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def _stray(fields: list[str], at: int) -> str:
    """A record line with an unbalanced quote opening field `at`."""
    return ",".join('"' + f if i == at else f for i, f in enumerate(fields))


@pytest.mark.slow
def test_twenty_stray_quotes_in_100k_rows_lose_exactly_the_twenty_lines(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    good = [
        (
            f"O{i:06d}",
            f"C{rng.randrange(5000):05d}",
            f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
            f"{rng.randrange(1, 100_000) / 100:.2f}",
            rng.choice(["USD", "EUR", "GBP"]),
        )
        for i in range(100_000)
    ]
    strays = [
        _stray([f"S{k}", f"CS{k}", "2024-02-01", "9.99", "EUR"], rng.randrange(5))
        for k in range(20)
    ]
    # Stray lines go before good row i: 14 at random, a pair with two good rows between, an
    # adjacent pair (both pairs well within the 20-line record limit), one right after the
    # header and one as the very last line.
    slots = rng.sample(range(10, 99_990, 10), 16)
    before: dict[int, list[str]] = {i: [s] for i, s in zip(slots[:14], strays[:14])}
    before[slots[14]], before[slots[14] + 2] = [strays[14]], [strays[15]]
    before[slots[15]] = [strays[16], strays[17]]
    before[0], before[100_000] = [strays[18]], [strays[19]]
    lines: list[tuple[str, tuple[str, ...] | None]] = []  # (text, the good record or None)
    for i in range(100_001):
        lines.extend((s, None) for s in before.get(i, []))
        if i < 100_000:
            lines.append((",".join(good[i]), good[i]))
    assert len(lines) == 100_020
    p = tmp_path / "orders.csv"
    p.write_text(HEADER.decode() + "".join(text + "\n" for text, _ in lines))

    raw = read_raw(p, KNOWN)

    expected_good = [(rec, n) for n, (_, rec) in enumerate(lines, start=2) if rec is not None]
    expected_bad = [(text, n) for n, (text, rec) in enumerate(lines, start=2) if rec is None]
    assert len(expected_bad) == 20 and expected_bad[0][1] == 2 and expected_bad[-1][1] == 100_021
    frame = raw.frame
    ok = frame.filter(pl.col("_read_error").is_null())
    bad = frame.filter(pl.col("_read_error").is_not_null())
    cols = ["order_id", "customer_id", "order_ts", "amount", "currency"]
    assert ok.select(cols).rows() == [
        v for v, _ in expected_good
    ]  # every good order intact, in order
    assert ok["_source_line"].to_list() == [n for _, n in expected_good]
    assert set(bad["_read_error"]) == {"UNBALANCED_QUOTE"}
    assert bad["_source_line"].to_list() == [n for _, n in expected_bad]
    assert bad["_raw_line"].to_list() == [v for v, _ in expected_bad]
    assert frame["_source_lines"].to_list() == [1] * 100_020
    assert raw.lines == 100_021 == _physical_lines(p.read_bytes())
    assert (raw.header_lines, raw.blank_lines) == (1, 0)


def test_stray_quote_whose_quote_closes_later_still_costs_one_line(tmp_path: Path) -> None:
    # Line 2 opens a quote that line 4 closes; lines 2-4 would split into exactly five fields,
    # but lines 3 and 4 are complete records on their own: line 2 is the bad one.
    lines = [
        'O1,C1,2024-01-01,"12.50,USD',
        "O2,C2,2024-01-02,2.00,USD",
        'O3,C3,2024-01-03,3.00",USD',
    ]
    p = tmp_path / "a.csv"
    p.write_text(HEADER.decode() + "\n".join(lines) + "\n")
    rows = _rows(read_raw(p, KNOWN).frame)
    assert [(r["_source_line"], r["_read_error"]) for r in rows] == [
        (2, "UNBALANCED_QUOTE"),
        (3, None),
        (4, None),
    ]
    assert rows[0]["_raw_line"] == lines[0]
    assert rows[1]["order_id"] == "O2" and rows[2]["amount"] == '3.00"'  # a literal quote mid-field


def test_candidate_with_the_wrong_field_count_is_not_a_record(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b'O1,"C1,2024-01-01,1,USD\nrest",x\nO2,C2,2024-01-01,1,USD\n')
    rows = _rows(read_raw(p, KNOWN).frame)
    assert [(r["_source_line"], r["_read_error"]) for r in rows] == [
        (2, "UNBALANCED_QUOTE"),
        (3, "RAGGED_ROW"),
        (4, None),
    ]
    assert rows[0]["_raw_line"] == 'O1,"C1,2024-01-01,1,USD'


@pytest.mark.parametrize("newline", [b"", b"\n", b"\r\n"])
def test_unterminated_quote_on_the_last_line(tmp_path: Path, newline: bytes) -> None:
    # pyarrow accepts this line as a record: the fast path must not.
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b'O1,C1,2024-01-01,1,USD\nO2,C2,2024-01-01,1,"USD' + newline)
    raw = read_raw(p, KNOWN)
    rows = _rows(raw.frame)
    assert [(r["_source_line"], r["_read_error"]) for r in rows] == [
        (2, None),
        (3, "UNBALANCED_QUOTE"),
    ]
    assert rows[1]["_raw_line"] == 'O2,C2,2024-01-01,1,"USD'
    assert raw.lines == 3


def test_legitimate_multi_line_fields(tmp_path: Path) -> None:
    data = HEADER + (
        b'O1,"Main St 1\nApt 4",2024-01-01,1.00,USD\n'
        b"O2,C2,2024-01-02,2.00,USD\n"
        b'O3,"He said ""hi""\n\nbye",2024-01-03,3.00,USD\n'
        b'O4,C4,2024-01-04,4.00,"US\nD"\n'
        b"O5,C5,2024-01-05,5.00,USD"
    )
    p = tmp_path / "a.csv"
    p.write_bytes(data)
    raw = read_raw(p, KNOWN)
    rows = _rows(raw.frame)
    assert [r["_read_error"] for r in rows] == [None] * 5
    assert [r["customer_id"] for r in rows] == [
        "Main St 1\nApt 4",
        "C2",
        'He said "hi"\n\nbye',
        "C4",
        "C5",
    ]
    assert rows[3]["currency"] == "US\nD"
    assert [r["_source_line"] for r in rows] == [2, 4, 5, 8, 10]
    assert [r["_source_lines"] for r in rows] == [2, 1, 3, 2, 1]
    assert (raw.lines, raw.blank_lines) == (10, 0) and raw.lines == _physical_lines(data)


def test_multi_line_fields_with_crlf(tmp_path: Path) -> None:
    data = (
        HEADER.replace(b"\n", b"\r\n")
        + b'O1,"Main St 1\r\nApt 4",2024-01-01,1.00,USD\r\n\r\nO2,C2,2024-01-02,2.00,USD\r\n'
    )
    p = tmp_path / "a.csv"
    p.write_bytes(data)
    raw = read_raw(p, KNOWN)
    rows = _rows(raw.frame)
    assert [r["customer_id"] for r in rows] == ["Main St 1\r\nApt 4", "C2"]
    assert [(r["_source_line"], r["_source_lines"]) for r in rows] == [(2, 2), (5, 1)]
    assert rows[1]["currency"] == "USD"
    assert (raw.lines, raw.blank_lines) == (5, 1)


def _long_field_file(tmp_path: Path, n_lines: int) -> Path:
    value = "\n".join(f"l{i}" for i in range(n_lines))
    p = tmp_path / "a.csv"
    p.write_text(HEADER.decode() + f'O1,"{value}",2024-01-01,1.00,USD\nO2,C2,2024-01-02,2.00,USD\n')
    return p


def test_record_line_limit(tmp_path: Path) -> None:
    p = _long_field_file(tmp_path, 25)
    within = _rows(read_raw(p, KNOWN, ReadOptions(max_record_lines=25)).frame)
    assert [(r["_source_line"], r["_source_lines"], r["_read_error"]) for r in within] == [
        (2, 25, None),
        (27, 1, None),
    ]
    assert within[0]["customer_id"] == "\n".join(f"l{i}" for i in range(25))
    over = read_raw(p, KNOWN, ReadOptions(max_record_lines=24))
    rows = _rows(over.frame)
    assert (rows[0]["_source_line"], rows[0]["_read_error"], rows[0]["_raw_line"]) == (
        2,
        "UNBALANCED_QUOTE",
        'O1,"l0',
    )
    # the lines after it are read one by one (here: ragged), the last record is intact
    assert [r["_read_error"] for r in rows[1:-1]] == ["RAGGED_ROW"] * 24
    assert (rows[-1]["order_id"], rows[-1]["_source_line"]) == ("O2", 27)
    assert over.lines == 27 and sum(r["_source_lines"] for r in rows) == 26
    default = _rows(read_raw(p, KNOWN).frame)  # default limit: 20 lines
    assert default[0]["_read_error"] == "UNBALANCED_QUOTE"


def test_record_char_limit(tmp_path: Path) -> None:
    value = "x" * 15_000 + "\n" + "y" * 6_000
    p = tmp_path / "a.csv"
    p.write_text(HEADER.decode() + f'O1,"{value}",2024-01-01,1.00,USD\n')
    assert _rows(read_raw(p, KNOWN).frame)[0]["_read_error"] == "UNBALANCED_QUOTE"
    rows = _rows(read_raw(p, KNOWN, ReadOptions(max_record_chars=30_000)).frame)
    assert len(rows) == 1 and rows[0]["customer_id"] == value and rows[0]["_source_lines"] == 2


def test_text_after_a_closing_quote_is_still_malformed(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b'O1,"C1"x,2024-01-01,1,USD\nO2,C2\n')
    rows = _rows(read_raw(p, KNOWN).frame)
    assert [r["_read_error"] for r in rows] == ["MALFORMED_RECORD", "RAGGED_ROW"]


# --------------------------------------------------------------------------------------------
# Line reconciliation


@pytest.mark.parametrize(
    ("data", "blanks", "in_records"),
    [
        (HEADER + b"O1,C1,2024-01-01,1,USD\n\n\nO2,C2,2024-01-01,1,USD\n\n", 3, 2),
        (HEADER + b"O1,C1,2024-01-01,1,USD\nO2,C2,2024-01-01,1,USD", 0, 2),  # no final newline
        (
            HEADER.replace(b"\n", b"\r\n")
            + b"O1,C1,2024-01-01,1,USD\r\n\r\nO2,C2,2024-01-01,1,USD\r\n",
            1,
            2,
        ),
        (HEADER + b'O1,"C\n\n1",2024-01-01,1,USD\n\nO2,C2\nO3,"x,2024-01-01,1,USD\n', 1, 5),
        (HEADER, 0, 0),
    ],
)
def test_every_physical_line_is_accounted_for(
    tmp_path: Path, data: bytes, blanks: int, in_records: int
) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(data)
    raw = read_raw(p, KNOWN)
    assert raw.lines == _physical_lines(data)
    assert (raw.header_lines, raw.blank_lines) == (1, blanks)
    assert int(raw.frame["_source_lines"].sum()) == in_records
    assert raw.lines == raw.header_lines + raw.blank_lines + in_records


def test_jsonl_and_parquet_line_counts(tmp_path: Path) -> None:
    j = tmp_path / "a.jsonl"
    data = b'{"order_id": "O1"}\n\n{"order_id": "O2"}\n   \n{"order_id": "O3"}'
    j.write_bytes(data)
    raw = read_raw(j, KNOWN)
    assert (raw.lines, raw.header_lines, raw.blank_lines) == (5, 0, 2)
    assert raw.frame["_source_lines"].to_list() == [1, 1, 1]
    clean = tmp_path / "b.jsonl"
    clean.write_bytes(b'{"order_id": "O1"}\n{"order_id": "O2"}\n')
    raw = read_raw(clean, KNOWN)
    assert raw.fast_path and (raw.lines, raw.header_lines, raw.blank_lines) == (2, 0, 0)
    q = tmp_path / "a.parquet"
    pq.write_table(pa.table({"order_id": ["O1", "O2", "O3"]}), q)
    raw = read_raw(q, KNOWN)
    assert (raw.lines, raw.header_lines) == (3, 0) and raw.frame["_source_lines"].to_list() == [
        1,
        1,
        1,
    ]


def test_a_reader_that_double_counts_lines_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: continuation lines are not consumed, so they are read again as records.
    monkeypatch.setattr(readers._LineBuffer, "skip", lambda self, k: None)
    p = tmp_path / "a.csv"
    p.write_bytes(HEADER + b'O1,"C\n1",2024-01-01,1,USD\n')
    with pytest.raises(ReconciliationError, match="3 physical lines but 1 header") as err:
        read_raw(p, KNOWN)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_reconcile_lines_names_the_numbers() -> None:
    frame = pl.DataFrame({"_source_lines": [1, 2]}, schema={"_source_lines": pl.Int32})
    raw = readers.RawFile(
        Path("orders.csv"), "csv", frame, [], blank_lines=1, lines=6, header_lines=1
    )
    with pytest.raises(
        ReconciliationError,
        match=r"orders.csv: 6 physical lines but 1 header \+ 1 blank \+ 3 in 2 records = 5",
    ):
        readers.reconcile_lines(raw)
    readers.reconcile_lines(
        readers.RawFile(
            Path("orders.csv"), "csv", frame, [], blank_lines=2, lines=6, header_lines=1
        )
    )


def test_lineage_columns_in_every_path(tmp_path: Path) -> None:
    files = {
        "fast.csv": HEADER + b"O1,C1,2024-01-01,1,USD\n",
        "slow.csv": HEADER + b"O1,C1,2024-01-01,1,USD\nO2\n",
        "fast.jsonl": b'{"order_id": "O1"}\n',
        "slow.jsonl": b'{"order_id": "O1"}\nnope\n',
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    pq.write_table(pa.table({"order_id": ["O1"]}), tmp_path / "a.parquet")
    for p in sorted(tmp_path.iterdir()):
        frame = read_raw(p, KNOWN).frame
        assert (
            tuple(frame.columns[-5:])
            == LINEAGE
            == ("_source_file", "_source_line", "_source_lines", "_read_error", "_raw_line")
        )
        assert (
            frame.schema["_source_lines"] == pl.Int32 and frame.schema["_source_line"] == pl.Int64
        ), p.name


# --------------------------------------------------------------------------------------------
# Delimiters


@pytest.mark.parametrize(("sep", "shown"), [(";", '";"'), ("\t", '"\\t"'), ("|", '"|"')])
def test_a_file_with_another_delimiter_stops_with_advice(
    tmp_path: Path, sep: str, shown: str
) -> None:
    p = tmp_path / "export.csv"
    p.write_text(
        sep.join(["order_id", "customer_id", "amount"])
        + "\n"
        + "\n".join(sep.join([f"O{i}", "C1", "1,50"]) for i in range(5000))
        + "\n"
    )
    with pytest.raises(SourceError) as err:
        read_raw(p, KNOWN)
    message = str(err.value)
    assert str(p) in message and "\n" not in message
    assert f"set sources.csv.delimiter: {shown} in the config" in message


def test_a_configured_delimiter_is_used_on_both_paths(tmp_path: Path) -> None:
    p = tmp_path / "export.csv"
    p.write_bytes(b'order_id;customer_id;amount\nO1;C1;1,50\nO2;"C;2";2,00\n')
    raw = read_raw(p, KNOWN, ReadOptions(delimiter=";"))
    assert raw.fast_path
    assert raw.frame.select("order_id", "customer_id", "amount").rows() == [
        ("O1", "C1", "1,50"),
        ("O2", "C;2", "2,00"),
    ]
    p.write_bytes(b'order_id;customer_id;amount\nO1;C1;1,50\nO2;C2\nO3;"C\n3";3,00\n')
    raw = read_raw(p, KNOWN, ReadOptions(delimiter=";"))
    assert not raw.fast_path
    rows = _rows(raw.frame)
    assert [(r["order_id"], r["customer_id"], r["amount"], r["_read_error"]) for r in rows] == [
        ("O1", "C1", "1,50", None),
        (None, None, None, "RAGGED_ROW"),
        ("O3", "C\n3", "3,00", None),
    ]


@pytest.mark.parametrize("name", ["a.tsv", "a.tab", "a.TSV"])
def test_tsv_is_always_tab_delimited(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"order_id\tamount\tcurrency\nO1\t1,50\tUSD\nO2\t2;00\tEUR\n")
    for options in (None, ReadOptions(delimiter=";")):
        raw = read_raw(p, KNOWN, options)
        assert raw.format == "tsv" and raw.header_lines == 1
        assert raw.frame.select("order_id", "amount", "currency").rows() == [
            ("O1", "1,50", "USD"),
            ("O2", "2;00", "EUR"),
        ]


def test_a_comma_separated_tsv_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "a.tsv"
    p.write_bytes(b"order_id,amount\nO1,1\n")
    with pytest.raises(SourceError, match="rename it to .csv") as err:
        read_raw(p, KNOWN)
    assert str(p) in str(err.value)


def test_read_options_are_checked() -> None:
    for bad in ({"delimiter": ";;"}, {"delimiter": '"'}, {"max_record_lines": 0}):
        with pytest.raises(ValueError):
            ReadOptions(**bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Compressed files and types


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("a.CSV.GZ", "csv"),
        ("orders.2024-01-01.csv", "csv"),
        ("orders.2024-01-01.csv.bz2", "csv"),
        ("a.tsv.gz", "tsv"),
        ("a.tab", "tsv"),
        ("a.jsonl.gz", "jsonl"),
        ("a.ndjson.zst", "jsonl"),
        ("a.json.gz", "jsonl"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("a.parquet.gz", None),
        ("a.txt", None),
        ("a.tar.gz", None),
        ("a.gz", None),
        ("csv", None),
        ("a.xlsx", None),
    ],
)
def test_file_format(name: str, fmt: str | None) -> None:
    assert file_format(Path(name)) == fmt


def _compress(data: bytes, suffix: str, path: Path) -> None:
    if suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    else:
        with pa.output_stream(str(path), compression="zstd") as out:
            out.write(data)


CLEAN_CSV = HEADER + b"".join(
    b"O%d,C%d,2024-01-01,%d.50,USD\n" % (i, i % 7, i) for i in range(3000)
)
DIRTY_CSV = (
    HEADER
    + b'O1,C1,2024-01-01,1,USD\n\nO2,"C\n2",2024-01-01,2,USD\nO3,"C3,2024-01-01,3,USD\nO4,C4\nO5,C5,2024-01-01,5,USD'
)
CLEAN_JSONL = b"".join(b'{"order_id": "O%d", "amount": "%d.50"}\n' % (i, i) for i in range(3000))
DIRTY_JSONL = b'{"order_id": "O1"}\n\nnot json\n{"order_id": "O2", "amount": "1.50"}'


@pytest.mark.parametrize(
    ("plain", "suffix", "data"),
    [
        ("a.csv", ".gz", CLEAN_CSV),
        ("a.csv", ".gz", DIRTY_CSV),
        ("a.csv", ".bz2", DIRTY_CSV),
        ("a.csv", ".zst", CLEAN_CSV),
        ("a.csv", ".zst", DIRTY_CSV),
        ("a.tsv", ".gz", CLEAN_CSV.replace(b",", b"\t")),
        ("a.jsonl", ".gz", CLEAN_JSONL),
        ("a.jsonl", ".gz", DIRTY_JSONL),
        ("a.ndjson", ".gz", DIRTY_JSONL),
        ("a.json", ".gz", CLEAN_JSONL),
        ("a.jsonl", ".zst", DIRTY_JSONL),
        ("a.jsonl", ".bz2", CLEAN_JSONL),
    ],
)
def test_compressed_files_read_like_the_text_inside(
    tmp_path: Path, plain: str, suffix: str, data: bytes
) -> None:
    (tmp_path / "plain").mkdir()
    plain_path = tmp_path / "plain" / plain
    plain_path.write_bytes(data)
    packed = tmp_path / (plain + suffix)
    _compress(data, suffix, packed)
    expected = read_raw(plain_path, KNOWN)
    got = read_raw(packed, KNOWN)
    assert got.compression == {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}[suffix]
    assert got.frame.drop("_source_file").equals(expected.frame.drop("_source_file"))
    assert (got.lines, got.blank_lines, got.columns, got.fast_path) == (
        _physical_lines(data),
        expected.blank_lines,
        expected.columns,
        expected.fast_path,
    )
    assert got.frame["_source_file"].unique().to_list() == [str(packed)]


def test_dirty_compressed_csv_line_numbers_refer_to_the_text(tmp_path: Path) -> None:
    p = tmp_path / "a.csv.gz"
    p.write_bytes(gzip.compress(DIRTY_CSV))
    rows = _rows(read_raw(p, KNOWN).frame)
    assert [(r["_source_line"], r["_source_lines"], r["_read_error"]) for r in rows] == [
        (2, 1, None),
        (4, 2, None),
        (6, 1, "UNBALANCED_QUOTE"),
        (7, 1, "RAGGED_ROW"),
        (8, 1, None),
    ]


@pytest.mark.parametrize("data", [b"this is not gzip\n", gzip.compress(CLEAN_CSV)[:-40]])
def test_corrupt_compressed_file_is_a_one_line_error(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "a.csv.gz"
    p.write_bytes(data)
    with pytest.raises(SourceError, match="cannot read gzip data") as err:
        read_raw(p, KNOWN)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (pa.array([[1, 2], [3]]), "list"),
        (pa.array([{"x": 1}, {"x": 2}]), "struct"),
        (pa.array([[("k", 1)], [("k", 2)]], type=pa.map_(pa.string(), pa.int64())), "map"),
    ],
)
def test_nested_parquet_column_is_refused_by_name_and_type(
    tmp_path: Path, column: pa.Array, kind: str
) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"order_id": ["O1", "O2"], "amount": column}), p)
    with pytest.raises(SourceError) as err:
        read_raw(p, KNOWN)
    message = str(err.value)
    assert str(p) in message and "'amount'" in message and kind in message and "\n" not in message


def test_nested_columns_outside_the_contract_are_ignored(tmp_path: Path) -> None:
    p = tmp_path / "a.parquet"
    table = pa.table(
        {"order_id": pa.array(["O1", "O2"]).dictionary_encode(), "tags": pa.array([[1], [2]])}
    )
    pq.write_table(table, p)
    raw = read_raw(p, KNOWN)
    assert raw.ignored_columns == ["tags"] and raw.frame["order_id"].to_list() == ["O1", "O2"]


def test_raw_from_arrow_refuses_nested_database_columns() -> None:
    table = pa.table({"order_id": ["O1"], "customer_id": pa.array([{"id": 1}])})
    with pytest.raises(SourceError, match="'customer_id' has the nested type struct"):
        readers.raw_from_arrow(table, Path("db.public.orders"), "postgres", [])


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_line_splitting_across_read_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Physical lines and the last line do not depend on where the file's reads are cut."""
    rng = random.Random(chunk)
    for trial in range(30):
        data = bytes(rng.choice(b'ab\n\n\r,"') for _ in range(rng.randrange(0, 40)))
        p = tmp_path / f"t{trial}.bin"
        p.write_bytes(data)
        expected = data.split(b"\n")
        if expected[-1] == b"":
            expected.pop()
        pieces = [e + b"\n" for e in expected[:-1]] + (
            [expected[-1] + (b"\n" if data.endswith(b"\n") else b"")] if expected else []
        )
        monkeypatch.setattr(streams, "_CHUNK", chunk)
        with readers._open(p, None) as fh:
            assert list(readers._iter_lines(fh)) == pieces
        assert readers._count_lines(p, None) == (
            _physical_lines(data),
            pieces[-1] if pieces else b"",
        )
    monkeypatch.setattr(streams, "_CHUNK", chunk)
    small = tmp_path / "dirty.csv"
    small.write_bytes(DIRTY_CSV)
    got = read_raw(small, KNOWN)
    monkeypatch.undo()
    assert got.frame.equals(read_raw(small, KNOWN).frame)


def test_round_trip_of_csv_writer_output_and_fast_equals_slow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What csv.writer writes -- quotes, doubled quotes, line breaks, CRLF inside fields -- is
    read back exactly, and the fast path (when it applies) gives the same frame as the slow one.
    Fields here hold no delimiter, so no continuation line can pass for a record."""
    rng = random.Random(11)
    alphabet = ["a", "b", "1", " ", '"', "\n", "\r\n", "é", ";"]
    header = ["order_id", "customer_id", "amount"]
    used_fast = 0
    for trial in range(150):
        multiline = trial % 2 == 1
        chars = alphabet if multiline else [c for c in alphabet if c not in ("\n", "\r\n")]
        rows = [
            [
                f"O{i}",
                *("".join(rng.choice(chars) for _ in range(rng.randrange(0, 6))) for _ in range(2)),
            ]
            for i in range(rng.randrange(1, 25))
        ]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        p = tmp_path / f"t{trial}.csv"
        p.write_text(buf.getvalue())
        raw = read_raw(p, header)
        assert raw.frame.select(header).rows() == [tuple(v or None for v in r) for r in rows], (
            buf.getvalue()
        )
        assert raw.lines == _physical_lines(p.read_bytes())
        used_fast += raw.fast_path
        with monkeypatch.context() as m:
            m.setattr(csv_reader, "_read_csv_fast", lambda *a, **k: None)
            slow = read_raw(p, header)
        assert not slow.fast_path and slow.frame.equals(raw.frame)
    assert used_fast >= 50  # the single-line files take the fast path


def test_a_file_without_contract_columns_keeps_its_rows(tmp_path: Path) -> None:
    """Extract rejects such a file by name; the reader must not crash or lose the row count."""
    (tmp_path / "a.csv").write_bytes(b"x,y\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_bytes(b"x,y\n1,2\n3\n")
    (tmp_path / "c.jsonl").write_bytes(b'{"x": "1"}\n{"x": "2"}\n')
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "d.parquet")
    for p in sorted(tmp_path.iterdir()):
        raw = read_raw(p, KNOWN)
        assert raw.columns == [] and raw.ignored_columns[0] == "x"
        assert raw.frame.height == 2 and raw.frame.columns == list(LINEAGE), p.name
