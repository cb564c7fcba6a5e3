"""Duplicates: exact copies collapse and are counted; conflicting copies are quarantined.

- An exact duplicate is a row whose values equal an earlier row's in every contract column
  (after parsing, so `12.5` and `12.50` are the same amount). The first row in source order
  is kept; the others count as `rows_duplicate`.
- A conflict is two rows with the same `order_id` but different content. One is kept by a
  deterministic rule -- the latest `updated_at` when the column is filled, otherwise the row
  read last (files in name order, then line order: a correction appended later wins) -- and
  the others are quarantined with `DUPLICATE_CONFLICT`.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

KEY = "order_id"


@dataclass
class Deduplicated:
    kept: pl.DataFrame
    duplicates: pl.DataFrame  # `_row`, `_file` of the dropped exact copies
    conflicts: pl.DataFrame  # full rows quarantined as DUPLICATE_CONFLICT


def deduplicate(typed: pl.DataFrame, value_columns: list[str]) -> Deduplicated:
    """`typed` holds valid rows with `_row` (source order) and `_file`.

    Copies of any kind share an order_id, so only rows whose key occurs more than once --
    usually a handful -- are compared in full.
    """
    repeated = typed.select(KEY).group_by(KEY).len().filter(pl.col("len") > 1)[KEY]
    if repeated.len() == 0:
        empty = typed.clear()
        return Deduplicated(kept=typed, duplicates=empty.select("_row", "_file"), conflicts=empty)
    contested = typed.filter(pl.col(KEY).is_in(repeated)).sort("_row")
    first = contested.select(pl.struct(value_columns).is_first_distinct()).to_series()
    duplicates = contested.filter(~first).select("_row", "_file")
    contested = contested.filter(first)

    order = [pl.col(KEY)]
    descending = [False]
    if "updated_at" in contested.columns:
        order.append(pl.col("updated_at"))
        descending.append(True)
    order.append(pl.col("_row"))
    descending.append(True)
    contested = contested.sort(order, descending=descending, nulls_last=True)
    winner = contested.select(pl.col(KEY).is_first_distinct()).to_series()
    conflicts = contested.filter(~winner)
    dropped = pl.concat([duplicates["_row"], conflicts["_row"]])
    kept = typed.filter(~pl.col("_row").is_in(dropped)) if dropped.len() else typed
    return Deduplicated(kept=kept, duplicates=duplicates, conflicts=conflicts)
