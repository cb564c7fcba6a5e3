"""Read one source file into a raw frame: values exactly as written, with their line numbers.

CSV/TSV and JSON Lines are read with every column as text (no type inference); Parquet keeps
its physical types. Text files may be compressed (`.gz`, `.bz2`, `.zst`); line numbers and
line counts then refer to the decompressed text. Every frame carries lineage columns:

- `_source_file`, `_source_line`: where the record starts (1-based physical line for CSV and
  JSON Lines, the header being line 1 of a CSV; the row number for Parquet);
- `_source_lines`: how many physical lines the record spans (1 unless a quoted CSV field
  holds a line break; 1 for Parquet and database rows);
- `_read_error`: a reason code when the record could not even be split into fields
  (`RAGGED_ROW`, `INVALID_UTF8`, `MALFORMED_RECORD`, `UNBALANCED_QUOTE`), with the raw text
  in `_raw_line`.

Clean files take a fast multi-threaded path (pyarrow/Polars). A file the fast path cannot
read exactly -- a ragged line, invalid UTF-8, a malformed JSON line, a quoted field spanning
lines, a stray quote -- is re-read record by record, so each bad record is kept with its
reason and line number instead of failing the file or vanishing. Every file is reconciled
by lines, not records: physical lines = header + blank lines + lines of all records, so a
record that swallowed its neighbours cannot hide.

The entry point, `read_raw`, dispatches by format; the pieces live in `formats` (suffixes),
`raw` (the RawFile contract, lineage, reconciliation), `streams` (bytes and physical lines),
`csv_reader` + `csv_records`, `jsonl_reader` and `arrow_reader`. Every public name stays
importable from here.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from pipelines.errors import SourceError
from pipelines.extract.arrow_reader import _read_parquet, raw_from_arrow
from pipelines.extract.csv_reader import _read_csv
from pipelines.extract.csv_records import _LineBuffer as _LineBuffer  # re-exported for tests
from pipelines.extract.formats import (
    COMPRESSIONS,
    SUFFIXES,
    SUPPORTED_TYPES,
    TEXT_FORMATS,
    file_compression,
    file_format,
    type_suffix,
    unsupported_reason,
)
from pipelines.extract.jsonl_reader import _read_jsonl
from pipelines.extract.raw import (
    INVALID_UTF8,
    LINEAGE,
    MALFORMED_RECORD,
    RAGGED_ROW,
    UNBALANCED_QUOTE,
    RawFile,
    ReadOptions,
    reconcile_lines,
    with_lineage,
)
from pipelines.extract.streams import _count_lines as _count_lines  # re-exported for tests
from pipelines.extract.streams import _iter_lines as _iter_lines  # re-exported for tests
from pipelines.extract.streams import _open as _open  # re-exported for tests

__all__ = [
    "COMPRESSIONS",
    "INVALID_UTF8",
    "LINEAGE",
    "MALFORMED_RECORD",
    "RAGGED_ROW",
    "SUFFIXES",
    "SUPPORTED_TYPES",
    "TEXT_FORMATS",
    "UNBALANCED_QUOTE",
    "RawFile",
    "ReadOptions",
    "file_compression",
    "file_format",
    "raw_from_arrow",
    "read_raw",
    "reconcile_lines",
    "type_suffix",
    "unsupported_reason",
    "with_lineage",
]


def read_raw(path: Path, known_columns: list[str], options: ReadOptions | None = None) -> RawFile:
    """Read a CSV/TSV, Parquet or JSON Lines file; only `known_columns` are kept (others listed)."""
    options = options or ReadOptions()
    fmt = file_format(path)
    if fmt is None:
        raise SourceError(f"{path}: {unsupported_reason(path)}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise SourceError(f"{path}: the file is empty")
    codec = file_compression(path)
    try:
        if fmt == "parquet":
            raw = _read_parquet(path, known_columns)
        elif fmt == "jsonl":
            raw = _read_jsonl(path, codec, known_columns)
        else:
            raw = _read_csv(path, fmt, codec, known_columns, options)
    except (OSError, EOFError, zlib.error) as exc:
        what = f"{codec} data" if codec else "the file"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise SourceError(f"{path}: cannot read {what} ({detail})") from None
    raw.compression = codec
    reconcile_lines(raw)
    return with_lineage(raw, str(path))
