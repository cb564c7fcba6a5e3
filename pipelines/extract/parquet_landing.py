"""Parquet sources landed as they are: a hard link (or a copy), never a rewrite.

A Parquet file already holds typed values, one record per row, so reading it into memory and
writing it out again (what the text readers must do) buys nothing: the landed file *is* the
source file. Its lineage is implied -- row k is `_source_line` k, one line, no read error --
and validation reads it in bounded row batches (`validate/batch.py`). A hard link costs no
time and no disk; a copy is made where a link cannot be (another file system).

Only files whose contract columns hold plain, non-dictionary types land this way; any other
Parquet file goes through the reader (`arrow_reader.py`), which refuses nested columns with a
reason and turns dictionaries into plain values.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.errors import SourceError

IMPLIED = "implied"  # the `lineage` of a landed file whose lineage columns are not stored


@dataclass(frozen=True)
class ParquetShape:
    """What landing needs from a Parquet file's footer (no data read)."""

    rows: int
    columns: list[str]  # contract columns present, in file order
    ignored: list[str]


def landable(path: Path, known: list[str]) -> ParquetShape | None:
    """The file's shape if it can be landed as it is, else None (it goes through the reader)."""
    try:
        schema = pq.read_schema(path)
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})"
        ) from None
    columns = [f.name for f in schema if f.name in known]
    for f in schema:
        if f.name in columns and (pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type)):
            return None
    return ParquetShape(rows, columns, [n for n in schema.names if n not in known])


def link_or_copy(source: Path, dest: Path) -> str:
    """Land `source` at `dest`: a hard link where the file system allows one, else a copy."""
    try:
        os.link(source, dest)
        return "link"
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    shutil.copyfile(source, dest)
    return "copy"
