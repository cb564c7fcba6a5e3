"""Read one source file into a raw frame: values exactly as written, with their line numbers.

CSV and JSON Lines are read with every column as text (no type inference); Parquet keeps its
physical types. Every frame carries lineage columns:

- `_source_file`, `_source_line`: where the record starts (1-based physical line for CSV and
  JSON Lines, the header being line 1 of a CSV; the row number for Parquet);
- `_read_error`: a reason code when the record could not even be split into fields
  (`RAGGED_ROW`, `INVALID_UTF8`, `MALFORMED_RECORD`), with the raw text in `_raw_line`.

Clean files take a fast multi-threaded path (pyarrow/Polars). A file the fast path cannot
read exactly -- a ragged line, invalid UTF-8, a malformed JSON line, a quoted field spanning
lines -- is re-read record by record, so each bad record is kept with its reason and line
number instead of failing the file or vanishing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import SourceError

LINEAGE = ("_source_file", "_source_line", "_read_error", "_raw_line")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

RAGGED_ROW = "RAGGED_ROW"
INVALID_UTF8 = "INVALID_UTF8"
MALFORMED_RECORD = "MALFORMED_RECORD"


@dataclass
class RawFile:
    """A source file read as-is."""

    path: Path
    format: str
    frame: pl.DataFrame
    columns: list[str]
    ignored_columns: list[str] = field(default_factory=list)
    blank_lines: int = 0
    fast_path: bool = True


def file_format(path: Path) -> str | None:
    return SUFFIXES.get(path.suffix.lower())


def read_raw(path: Path, known_columns: list[str]) -> RawFile:
    """Read a CSV, Parquet or JSON Lines file; only `known_columns` are kept (others listed)."""
    fmt = file_format(path)
    if fmt is None:
        raise SourceError(f"{path}: unsupported file type (use .csv, .parquet or .jsonl)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise SourceError(f"{path}: the file is empty")
    reader = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl}[fmt]
    return with_lineage(reader(path, known_columns), str(path))


def with_lineage(raw: RawFile, source_name: str) -> RawFile:
    raw.frame = raw.frame.with_columns(pl.lit(source_name).alias("_source_file")).select(*raw.columns, *LINEAGE)
    return raw


# --------------------------------------------------------------------------------------------
# CSV


def _csv_header(path: Path) -> list[str]:
    with path.open("rb") as fh:
        first = fh.readline()
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(f"{path}: the header line is not UTF-8 text; is this really a CSV file?") from None
    header = next(csv.reader([text]), [])
    header = [h.strip() for h in header]
    if not any(header):
        raise SourceError(f"{path}: the first line is empty; expected a CSV header")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceError(f"{path}: the header repeats column(s) {', '.join(dupes)}")
    return header


def _count_lines(path: Path) -> int:
    """Physical lines (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


def _read_csv(path: Path, known: list[str]) -> RawFile:
    header = _csv_header(path)
    keep = [h for h in header if h in known]
    ignored = [h for h in header if h not in known]
    fast = _read_csv_fast(path, header, keep)
    if fast is not None:
        return RawFile(path, "csv", fast, keep, ignored)
    frame, blanks = _read_csv_slow(path, header, keep)
    return RawFile(path, "csv", frame, keep, ignored, blank_lines=blanks, fast_path=False)


def _read_csv_fast(path: Path, header: list[str], keep: list[str]) -> pl.DataFrame | None:
    invalid: list[int | None] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(len(header))], skip_rows=1),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in range(len(header))},
                include_columns=[f"c{header.index(k)}" for k in keep],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if invalid or _count_lines(path) != table.num_rows + 1:
        return None  # a bad or multi-line record: re-read record by record for exact lines
    frame = pl.from_arrow(table.rename_columns(keep))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(
        pl.int_range(2, table.num_rows + 2, dtype=pl.Int64).alias("_source_line"),
        pl.lit(None, pl.String).alias("_read_error"),
        pl.lit(None, pl.String).alias("_raw_line"),
    )


class _Lines:
    """Physical lines of a binary file, decoded losslessly, remembering those not yet consumed."""

    def __init__(self, fh: io.BufferedReader) -> None:
        self._fh = fh
        self.number = 0
        self.pending: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for raw in self._fh:
            self.number += 1
            text = raw.decode("utf-8", "surrogateescape")
            if self.number == 1:
                text = text.removeprefix("\ufeff")
            self.pending.append(text)
            yield text

    def take(self) -> str:
        text = "".join(self.pending)
        self.pending.clear()
        return text


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str) -> str:
    """Raw text for the quarantine: invalid bytes shown as \\xNN, line ending dropped."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").rstrip("\r\n")


class _Collector:
    def __init__(self, keep: list[str]) -> None:
        self.values: dict[str, list[str | None]] = {k: [] for k in keep}
        self.lines: list[int] = []
        self.errors: list[str | None] = []
        self.raw: list[str | None] = []

    def good(self, line: int, row: dict[str, str | None]) -> None:
        for key, col in self.values.items():
            col.append(row.get(key))
        self.lines.append(line)
        self.errors.append(None)
        self.raw.append(None)

    def bad(self, line: int, code: str, raw_text: str) -> None:
        for col in self.values.values():
            col.append(None)
        self.lines.append(line)
        self.errors.append(code)
        self.raw.append(_printable(raw_text))

    def frame(self) -> pl.DataFrame:
        data: dict[str, pl.Series] = {k: pl.Series(k, v, dtype=pl.String) for k, v in self.values.items()}
        data["_source_line"] = pl.Series("_source_line", self.lines, dtype=pl.Int64)
        data["_read_error"] = pl.Series("_read_error", self.errors, dtype=pl.String)
        data["_raw_line"] = pl.Series("_raw_line", self.raw, dtype=pl.String)
        return pl.DataFrame(data)


def _read_csv_slow(path: Path, header: list[str], keep: list[str]) -> tuple[pl.DataFrame, int]:
    positions = {k: header.index(k) for k in keep}
    out = _Collector(keep)
    blanks = 0
    with path.open("rb") as fh:
        lines = _Lines(fh)
        reader = csv.reader(lines, strict=True)
        next(reader)  # header, already checked
        lines.take()
        last_end = lines.number
        while True:
            start = last_end + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error:
                # An unbalanced quote or similar: keep what was consumed as one bad record.
                last_end = lines.number
                out.bad(start, MALFORMED_RECORD, lines.take())
                continue
            last_end = lines.number
            raw_text = lines.take()
            if not fields or (len(fields) == 1 and not fields[0].strip() and len(header) > 1):
                blanks += 1
                continue
            if len(fields) != len(header):
                out.bad(start, RAGGED_ROW, raw_text)
            elif any(_has_surrogates(f) for f in fields):
                out.bad(start, INVALID_UTF8, raw_text)
            else:
                out.good(start, {k: (fields[i] if fields[i] != "" else None) for k, i in positions.items()})
    return out.frame(), blanks


# --------------------------------------------------------------------------------------------
# JSON Lines


def _read_jsonl(path: Path, known: list[str]) -> RawFile:
    try:
        frame = pl.read_ndjson(path, schema={k: pl.String for k in known}, ignore_errors=False)
    except Exception:  # noqa: BLE001 - any failure means: read it record by record
        frame = None
    if frame is not None and _count_lines(path) == frame.height:
        present = [k for k in known if frame[k].null_count() < frame.height]
        frame = frame.select(present).with_columns(
            pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("_source_line"),
            pl.lit(None, pl.String).alias("_read_error"),
            pl.lit(None, pl.String).alias("_raw_line"),
        )
        return RawFile(path, "jsonl", frame, present, _jsonl_other_keys(path, known))
    slow, blanks, present, other = _read_jsonl_slow(path, known)
    return RawFile(path, "jsonl", slow, present, other, blank_lines=blanks, fast_path=False)


def _jsonl_other_keys(path: Path, known: list[str], sample: int = 1000) -> list[str]:
    """Keys outside the contract seen in the first records (reported, not loaded)."""
    other: set[str] = set()
    with path.open("rb") as fh:
        for i, line in enumerate(fh):
            if i >= sample:
                break
            obj = json.loads(line) if line.strip() else {}
            if isinstance(obj, dict):
                other.update(k for k in obj if k not in known)
    return sorted(other)


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    raise TypeError("nested value")


def _read_jsonl_slow(path: Path, known: list[str]) -> tuple[pl.DataFrame, int, list[str], list[str]]:
    out = _Collector(known)
    blanks = 0
    seen: set[str] = set()
    other: set[str] = set()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.decode("utf-8", "surrogateescape")
            if not text.strip():
                blanks += 1
                continue
            try:
                obj = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                row = {k: _json_text(v) for k, v in obj.items() if k in out.values}
            except (ValueError, TypeError):
                out.bad(number, MALFORMED_RECORD, text)
                continue
            if any(v is not None and _has_surrogates(v) for v in row.values()) or any(
                _has_surrogates(k) for k in obj
            ):
                out.bad(number, INVALID_UTF8, text)
                continue
            seen.update(k for k, v in row.items() if v is not None)
            other.update(k for k in obj if k not in out.values)
            out.good(number, row)
    frame = out.frame()
    present = [k for k in known if k in seen]
    return frame.select(*present, "_source_line", "_read_error", "_raw_line"), blanks, present, sorted(other)


# --------------------------------------------------------------------------------------------
# Parquet


def _read_parquet(path: Path, known: list[str]) -> RawFile:
    try:
        schema = pq.read_schema(path)
        keep = [n for n in schema.names if n in known]
        table = pq.read_table(path, columns=keep)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from None
    return raw_from_arrow(table, path, "parquet", [n for n in schema.names if n not in known])


def raw_from_arrow(table: pa.Table, path: Path, fmt: str, ignored: list[str]) -> RawFile:
    """A typed Arrow table (Parquet, a database) as a raw file: types kept, rows numbered."""
    # Dictionary-encoded columns become plain values; types are otherwise kept as written.
    table = table.cast(
        pa.schema(
            [
                pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                for f in table.schema
            ]
        )
    )
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        pl.int_range(1, table.num_rows + 1, dtype=pl.Int64).alias("_source_line"),
        pl.lit(None, pl.String).alias("_read_error"),
        pl.lit(None, pl.String).alias("_raw_line"),
    )
    return RawFile(path, fmt, frame, list(table.column_names), ignored)
