"""The batch's parsed rows on disk, one Parquet part per landed chunk, minus the rows let go.

Validation never holds a whole batch: the parse step writes each chunk's typed rows here, and
the later steps read them back part by part (`frames`) or let DuckDB look at all of them at
once within the memory budget (`relation`), for the few questions that need every row --
which order ids repeat, which values of a unique column occur twice. Rows the steps let go
(exact copies, conflicting copies, rows that fail a rule) are not deleted from the files; they
are listed in `dropped` and left out of everything read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import polars as pl

from pipelines.engines import scan_parquet

ROW = "_row"


def _no_rows() -> pl.Series:
    return pl.Series(ROW, [], dtype=pl.UInt64)


@dataclass(frozen=True)
class TypedParts:
    paths: list[Path]
    dropped: pl.Series = field(default_factory=_no_rows)  # batch row numbers left out

    def without(self, rows: pl.Series) -> TypedParts:
        """The same parts with `rows` left out too."""
        if rows.len() == 0:
            return self
        both = pl.concat([self.dropped, rows.cast(pl.UInt64).rename(ROW)]).unique()
        return replace(self, dropped=both)

    def frames(self, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """Each part's rows (all columns, or `columns` and `_row`), the dropped ones left out."""
        for path in self.paths:
            frame = pl.read_parquet(
                path, columns=None if columns is None else [*columns, ROW], glob=False
            )
            if self.dropped.len():
                frame = frame.filter(~pl.col(ROW).cast(pl.UInt64).is_in(self.dropped))
            yield frame

    def relation(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        """Register every part's kept rows as the view `name` in `con` (streamed, not loaded)."""
        scan_parquet(con, f"{name}_parts", self.paths)
        con.register(f"{name}_dropped", self.dropped.to_frame())
        con.execute(
            f"create or replace temp view {name} as select * from {name}_parts "
            f"where {ROW} not in (select {ROW} from {name}_dropped)"
        )
