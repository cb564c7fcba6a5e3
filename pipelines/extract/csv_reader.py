"""CSV/TSV: the header checks and the fast path, falling back to record-by-record reading.

pyarrow reads a clean file in one multi-threaded pass; its result is accepted only when every
physical line is exactly one clean record. Anything else is re-read by `csv_records`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines.errors import SourceError
from pipelines.extract.csv_records import _ends_open, _read_csv_slow
from pipelines.extract.raw import RawFile, ReadOptions, _clean_lineage
from pipelines.extract.streams import _count_lines, _decode, _iter_lines, _open

_OTHER_DELIMITERS = (",", ";", "\t", "|")


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(
        delimiter, repr(delimiter)
    )


def _csv_header(path: Path, codec: str | None, fmt: str, delimiter: str) -> list[str]:
    with _open(path, codec) as fh:
        first = next(_iter_lines(fh), b"")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(
            f"{path}: the header line is not UTF-8 text; is this really a CSV file?"
        ) from None
    header = next(csv.reader([text], delimiter=delimiter), [])
    header = [h.strip() for h in header]
    if not any(header):
        raise SourceError(f"{path}: the first line is empty; expected a CSV header")
    if len(header) == 1:
        _check_delimiter(path, fmt, delimiter, header[0])
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceError(f"{path}: the header repeats column(s) {', '.join(dupes)}")
    return header


def _check_delimiter(path: Path, fmt: str, delimiter: str, only: str) -> None:
    """A one-column header holding another delimiter means the file is split the wrong way."""
    seen = [(only.count(d), d) for d in _OTHER_DELIMITERS if d != delimiter and d in only]
    if not seen:
        return
    other = max(seen)[1]
    found = f"the header is one column ({only[:60]!r}) containing {_delimiter_name(other)}s: the file seems {_delimiter_name(other)}-delimited"
    if fmt == "tsv":
        advice = "a .tsv/.tab file is always read tab-delimited: rename it to .csv" + (
            f" and set sources.csv.delimiter: {json.dumps(other)} in the config"
            if other != ","
            else ""
        )
    else:
        advice = f"set sources.csv.delimiter: {json.dumps(other)} in the config"
    raise SourceError(f"{path}: {found}, not {_delimiter_name(delimiter)}-delimited; {advice}")


def _read_csv(
    path: Path, fmt: str, codec: str | None, known: list[str], options: ReadOptions
) -> RawFile:
    delimiter = "\t" if fmt == "tsv" else options.delimiter
    header = _csv_header(path, codec, fmt, delimiter)
    keep = [h for h in header if h in known]
    ignored = [h for h in header if h not in known]
    fast = _read_csv_fast(path, codec, header, keep, delimiter)
    if fast is not None:
        frame, lines = fast
        return RawFile(path, fmt, frame, keep, ignored, lines=lines, header_lines=1)
    frame, blanks, lines = _read_csv_slow(path, codec, header, keep, delimiter, options)
    return RawFile(
        path,
        fmt,
        frame,
        keep,
        ignored,
        blank_lines=blanks,
        fast_path=False,
        lines=lines,
        header_lines=1,
    )


def _read_csv_fast(
    path: Path, codec: str | None, header: list[str], keep: list[str], delimiter: str
) -> tuple[pl.DataFrame, int] | None:
    """pyarrow's reader, accepted only if every physical line is exactly one clean record."""
    invalid: list[int | None] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    names = [f"c{i}" for i in range(len(header))]
    try:
        with pa.input_stream(str(path), compression=codec) as source:
            table = pacsv.read_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    include_columns=[f"c{header.index(k)}" for k in keep] or names[:1],  # [] = all
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    null_values=[""],
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if invalid:
        return None
    lines, last = _count_lines(path, codec)
    if lines != table.num_rows + 1:
        return None  # a blank or multi-line record, or a quote that swallowed lines
    if table.num_rows and _ends_open(_decode(last), delimiter, in_quotes=False):
        return None  # pyarrow accepts an unterminated quote on the last line
    if not keep:  # no contract column in this file: lineage only (extract reports it)
        return pl.select(_clean_lineage(2, table.num_rows)), lines
    frame = pl.from_arrow(table.rename_columns(keep))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(_clean_lineage(2, table.num_rows)), lines
