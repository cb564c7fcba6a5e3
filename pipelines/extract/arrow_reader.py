"""Typed sources: Parquet files and Arrow tables (also PostgreSQL results) as raw files.

Their values keep their physical types and their rows are numbered from 1; what is refused
here is a nested contract column, named with its type.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import SourceError
from pipelines.extract.raw import RawFile, _clean_lineage


def _read_parquet(path: Path, known: list[str]) -> RawFile:
    try:
        schema = pq.read_schema(path)
        keep = [n for n in schema.names if n in known]
        table = pq.read_table(path, columns=keep)
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})"
        ) from None
    ignored = [n for n in schema.names if n not in known]
    if not keep:  # no contract column: keep the row count (extract reports the missing columns)
        return RawFile(path, "parquet", pl.select(_clean_lineage(1, rows)), [], ignored, lines=rows)
    return raw_from_arrow(table, path, "parquet", ignored)


def raw_from_arrow(table: pa.Table, path: Path, fmt: str, ignored: list[str]) -> RawFile:
    """A typed Arrow table (Parquet, a database) as a raw file: types kept, rows numbered.

    Contract columns hold plain values; a nested column (list, struct, map) is refused here
    with its name and type, rather than failing later in a cast far from the cause.
    """
    plain = []
    for f in table.schema:
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if pa.types.is_nested(typ):
            raise SourceError(
                f"{path}: column {f.name!r} has the nested type {str(typ)[:120]}; contract columns must hold "
                "plain values (text, numbers, dates, booleans): flatten it in the export"
            )
        plain.append(pa.field(f.name, typ))
    # Dictionary-encoded columns become plain values; types are otherwise kept as written.
    table = table.cast(pa.schema(plain))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(_clean_lineage(1, table.num_rows))
    return RawFile(path, fmt, frame, list(table.column_names), ignored, lines=table.num_rows)
