"""The landed batch as validation sees it: its files, their row offsets, their raw rows.

Every row of a batch has a number (`_row`), counted across its files in order; a file's rows
start at its offset. Quarantined rows are looked up again in the landed raw files by number,
so the quarantine keeps their values exactly as received.

A landed file is read in row batches (`chunks`), never whole, so validating a batch of any
size holds only a bounded slice of it. A Parquet source landed as it is
(`extract/parquet_landing.py`) has implied lineage, added here as it is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from pipelines.extract.parquet_landing import IMPLIED
from pipelines.extract.raw import LINEAGE, _clean_lineage
from pipelines.stage_results import ExtractResult


def file_of(rows: pl.Series, offsets: np.ndarray) -> np.ndarray:
    """The index of the file each batch row number belongs to."""
    return np.searchsorted(offsets, rows.to_numpy(), side="right") - 1


@dataclass
class LandedBatch:
    raw_dir: Path
    files: list[dict[str, Any]]
    offsets: np.ndarray
    chunk_rows: int | None = None  # rows read at a time (None: a whole file)

    @classmethod
    def from_extract(cls, extract: ExtractResult, chunk_rows: int | None = None) -> LandedBatch:
        if extract["raw_dir"] is None:
            raise ValueError("a batch that did not arrive has nothing to validate")
        files = extract["files"]
        offsets = np.cumsum([0] + [f["rows"] for f in files])[:-1].astype(np.int64)
        return cls(Path(extract["raw_dir"]), files, offsets, chunk_rows)

    @property
    def rows_in(self) -> int:
        return sum(f["rows"] for f in self.files)

    def raw(self, i: int) -> pl.DataFrame:
        """File i's landed rows, numbered (the whole file: for small batches and tests)."""
        return pl.concat(list(self.file_chunks(i, None)), how="vertical")

    def file_chunks(self, i: int, rows: int | None) -> Iterator[pl.DataFrame]:
        """File i's landed rows in numbered frames of at most `rows` rows (None: one frame)."""
        f = self.files[i]
        path = self.raw_dir / f["landed"]
        implied = f.get("lineage") == IMPLIED
        parquet = pq.ParquetFile(path)
        columns = f["columns"] if implied else None
        total = parquet.metadata.num_rows
        size = max(rows or total, 1)
        start = int(self.offsets[i])
        done = 0
        batches = parquet.iter_batches(batch_size=size, columns=columns) if total else iter(())
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            if implied:
                frame = frame.with_columns(
                    pl.lit(f["path"]).alias("_source_file"), *_clean_lineage(done + 1, frame.height)
                ).select(*f["columns"], *LINEAGE)
            yield frame.with_row_index("_row", start + done)
            done += frame.height
        if done == 0:  # an empty file: its columns, no rows
            schema = parquet.schema_arrow
            empty = pl.from_arrow(schema.empty_table())
            assert isinstance(empty, pl.DataFrame)
            if implied:
                empty = (
                    empty.select(columns or [])
                    .with_columns(pl.lit(f["path"]).alias("_source_file"), *_clean_lineage(1, 0))
                    .select(*f["columns"], *LINEAGE)
                )
            yield empty.with_row_index("_row", start)

    def rows(self, rows: pl.Series) -> pl.DataFrame:
        """The landed raw rows with these batch row numbers, values as text."""
        wanted = np.sort(rows.to_numpy())
        parts = []
        for i, f in enumerate(self.files):
            lo, hi = self.offsets[i], self.offsets[i] + f["rows"]
            mine = wanted[(wanted >= lo) & (wanted < hi)]
            if not len(mine):
                continue
            keys = pl.Series(mine.astype(np.uint32))
            for chunk in self.file_chunks(i, self.chunk_rows):
                raw = chunk.filter(pl.col("_row").is_in(keys))
                if raw.height:
                    parts.append(
                        raw.with_columns(
                            pl.exclude("_row", "_source_line", "_source_lines").cast(pl.String)
                        )
                    )
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
