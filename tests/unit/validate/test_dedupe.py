"""Duplicates: exact copies collapse; conflicts keep one row by the documented rule."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pipelines.validate.dedupe import deduplicate

COLS = ["order_id", "customer_id", "amount", "updated_at"]


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "order_id": pl.String,
            "customer_id": pl.String,
            "amount": pl.Float64,
            "updated_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    ).with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.lit(0, pl.Int32).alias("_file")
    )


def test_exact_copies_collapse_to_the_first() -> None:
    d = deduplicate(
        _frame(
            [
                ("O1", "C1", 5.0, None),
                ("O2", "C2", 1.0, None),
                ("O1", "C1", 5.0, None),
                ("O1", "C1", 5.0, None),
            ]
        ),
        COLS,
    )
    assert sorted(d.kept["_row"].to_list()) == [0, 1]
    assert d.duplicates["_row"].to_list() == [2, 3]
    assert d.conflicts.height == 0


def test_conflict_keeps_the_row_read_last_without_updated_at() -> None:
    d = deduplicate(
        _frame([("O1", "C1", 5.0, None), ("O1", "C1", 6.0, None), ("O2", "C2", 1.0, None)]), COLS
    )
    assert d.kept.filter(pl.col("order_id") == "O1")["amount"].to_list() == [6.0]
    assert d.conflicts["_row"].to_list() == [0]


def test_conflict_keeps_the_latest_updated_at() -> None:
    early, late = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    d = deduplicate(
        _frame([("O1", "C1", 5.0, late), ("O1", "C1", 6.0, early), ("O1", "C1", 7.0, None)]), COLS
    )
    assert d.kept["amount"].to_list() == [5.0]
    assert sorted(d.conflicts["_row"].to_list()) == [1, 2]


def test_counts_add_up() -> None:
    rows = [("O1", "C1", 1.0, None)] * 3 + [("O1", "C1", 2.0, None), ("O3", "C3", 3.0, None)]
    d = deduplicate(_frame(rows), COLS)
    assert d.kept.height + d.duplicates.height + d.conflicts.height == len(rows)
    assert (d.kept.height, d.duplicates.height, d.conflicts.height) == (2, 2, 1)
    assert d.kept.sort("order_id")["amount"].to_list() == [2.0, 3.0]  # the O1 read last wins


def test_random_batches_match_an_independent_dedupe() -> None:
    """The rule computed in plain Python: per order, drop exact copies of an earlier row; among
    the distinct versions keep the latest updated_at, else the one read last."""
    import random

    rng = random.Random(3)
    stamps = [None, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)]
    for _ in range(50):
        rows = [
            (f"O{rng.randrange(8)}", "C", float(rng.randrange(3)), rng.choice(stamps))
            for _ in range(rng.randrange(1, 30))
        ]
        d = deduplicate(_frame(rows), COLS)
        seen: dict[tuple, int] = {}
        duplicates = []
        for i, row in enumerate(rows):
            if row in seen:
                duplicates.append(i)
            else:
                seen[row] = i
        winners = {}
        for row, i in seen.items():
            best = winners.get(row[0])
            key = (row[3] is not None, row[3] or datetime.min.replace(tzinfo=UTC), i)
            if best is None or key > best[0]:
                winners[row[0]] = (key, i)
        kept = sorted(i for _, i in winners.values())
        conflicts = sorted(set(seen.values()) - set(kept))
        assert sorted(d.kept["_row"].to_list()) == kept, rows
        assert sorted(d.duplicates["_row"].to_list()) == duplicates, rows
        assert sorted(d.conflicts["_row"].to_list()) == conflicts, rows
