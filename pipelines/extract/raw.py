"""What every reader returns: a raw frame with lineage columns, and how it is reconciled.

The contract shared by all formats lives here -- `RawFile`, the lineage columns, the read
error codes, the text-splitting options, the line reconciliation and the record-by-record
frame builder -- so each format's reader only has to produce it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from pipelines.errors import ReconciliationError
from pipelines.extract.streams import _printable

LINEAGE = ("_source_file", "_source_line", "_source_lines", "_read_error", "_raw_line")

RAGGED_ROW = "RAGGED_ROW"
INVALID_UTF8 = "INVALID_UTF8"
MALFORMED_RECORD = "MALFORMED_RECORD"
UNBALANCED_QUOTE = "UNBALANCED_QUOTE"


@dataclass(frozen=True)
class ReadOptions:
    """How text sources are split; the limits bound what one quoted CSV record may swallow."""

    delimiter: str = ","
    max_record_lines: int = 20
    max_record_chars: int = 20_000

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ValueError(
                f"CSV delimiter must be one character other than a quote or newline, got {self.delimiter!r}"
            )
        if self.max_record_lines < 1 or self.max_record_chars < 1:
            raise ValueError("max_record_lines and max_record_chars must be at least 1")


@dataclass
class RawFile:
    """A source file read as-is, with what is needed to reconcile it line by line."""

    path: Path
    format: str
    frame: pl.DataFrame
    columns: list[str]
    ignored_columns: list[str] = field(default_factory=list)
    blank_lines: int = 0
    fast_path: bool = True
    lines: int = 0  # physical lines incl. header and blank lines (Parquet/Arrow: rows)
    header_lines: int = 0  # 1 for CSV/TSV
    compression: str | None = None


def reconcile_lines(raw: RawFile) -> None:
    """Physical lines must equal header + blank lines + the lines of every record."""
    in_records = int(raw.frame["_source_lines"].sum()) if raw.frame.height else 0
    accounted = raw.header_lines + raw.blank_lines + in_records
    if raw.lines != accounted:
        raise ReconciliationError(
            f"{raw.path}: {raw.lines} physical lines but {raw.header_lines} header + {raw.blank_lines} blank + "
            f"{in_records} in {raw.frame.height} records = {accounted}; the reader lost or double-counted lines"
        )


def with_lineage(raw: RawFile, source_name: str) -> RawFile:
    raw.frame = raw.frame.with_columns(pl.lit(source_name).alias("_source_file")).select(
        *raw.columns, *LINEAGE
    )
    return raw


def _clean_lineage(first_line: int, n: int) -> list[pl.Expr]:
    """Lineage of n single-line records numbered from `first_line`, none bad."""
    return [
        pl.int_range(first_line, first_line + n, dtype=pl.Int64).alias("_source_line"),
        pl.lit(1, pl.Int32).alias("_source_lines"),
        pl.lit(None, pl.String).alias("_read_error"),
        pl.lit(None, pl.String).alias("_raw_line"),
    ]


class _Collector:
    def __init__(self, keep: list[str]) -> None:
        self.values: dict[str, list[str | None]] = {k: [] for k in keep}
        self.lines: list[int] = []
        self.spans: list[int] = []
        self.errors: list[str | None] = []
        self.raw: list[str | None] = []

    def good(self, line: int, row: dict[str, str | None], span: int = 1) -> None:
        for key, col in self.values.items():
            col.append(row.get(key))
        self._lineage(line, span)

    def good_fields(
        self,
        line: int,
        fields: list[str],
        positions: list[tuple[list[str | None], int]],
        span: int = 1,
    ) -> None:
        """A split CSV record: `positions` pairs each kept column's values with its field index."""
        for col, i in positions:
            col.append(fields[i] or None)
        self._lineage(line, span)

    def _lineage(self, line: int, span: int) -> None:
        self.lines.append(line)
        self.spans.append(span)
        self.errors.append(None)
        self.raw.append(None)

    def bad(self, line: int, code: str, raw_text: str, span: int = 1) -> None:
        for col in self.values.values():
            col.append(None)
        self.lines.append(line)
        self.spans.append(span)
        self.errors.append(code)
        self.raw.append(_printable(raw_text))

    def frame(self) -> pl.DataFrame:
        data: dict[str, pl.Series] = {
            k: pl.Series(k, v, dtype=pl.String) for k, v in self.values.items()
        }
        data["_source_line"] = pl.Series("_source_line", self.lines, dtype=pl.Int64)
        data["_source_lines"] = pl.Series("_source_lines", self.spans, dtype=pl.Int32)
        data["_read_error"] = pl.Series("_read_error", self.errors, dtype=pl.String)
        data["_raw_line"] = pl.Series("_raw_line", self.raw, dtype=pl.String)
        return pl.DataFrame(data)
