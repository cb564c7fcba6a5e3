"""The landed batch as validation sees it: its files, their row offsets, their raw rows.

Every row of a batch has a number (`_row`), counted across its files in order; a file's rows
start at its offset. Quarantined rows are looked up again in the landed raw files by number,
so the quarantine keeps their values exactly as received.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.stage_results import ExtractResult


def file_of(rows: pl.Series, offsets: np.ndarray) -> np.ndarray:
    """The index of the file each batch row number belongs to."""
    return np.searchsorted(offsets, rows.to_numpy(), side="right") - 1


@dataclass
class LandedBatch:
    raw_dir: Path
    files: list[dict[str, Any]]
    offsets: np.ndarray

    @classmethod
    def from_extract(cls, extract: ExtractResult) -> LandedBatch:
        if extract["raw_dir"] is None:
            raise ValueError("a batch that did not arrive has nothing to validate")
        files = extract["files"]
        offsets = np.cumsum([0] + [f["rows"] for f in files])[:-1].astype(np.int64)
        return cls(Path(extract["raw_dir"]), files, offsets)

    @property
    def rows_in(self) -> int:
        return sum(f["rows"] for f in self.files)

    def raw(self, i: int) -> pl.DataFrame:
        """File i's landed rows, numbered."""
        path = self.raw_dir / self.files[i]["landed"]
        return pl.read_parquet(path, glob=False).with_row_index("_row", int(self.offsets[i]))

    def rows(self, rows: pl.Series) -> pl.DataFrame:
        """The landed raw rows with these batch row numbers, values as text."""
        wanted = np.sort(rows.to_numpy())
        parts = []
        for i, f in enumerate(self.files):
            lo, hi = self.offsets[i], self.offsets[i] + f["rows"]
            mine = wanted[(wanted >= lo) & (wanted < hi)]
            if not len(mine):
                continue
            raw = self.raw(i).filter(pl.col("_row").is_in(pl.Series(mine.astype(np.uint32))))
            parts.append(
                raw.with_columns(
                    pl.exclude("_row", "_source_line", "_source_lines").cast(pl.String)
                )
            )
        return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
