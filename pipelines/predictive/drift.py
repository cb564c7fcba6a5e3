"""Drift: the model backtest's holdout error against the previous published snapshot's.

A model that suddenly predicts much worse (or much better) than yesterday usually means the
data changed -- a feed, a tracking change, a promotion -- and deserves a look before anyone
acts on its predictions. The warning goes into the manifest.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.storage import layout
from pipelines.storage.snapshots import published_snapshots


def backtest_drift_warning(
    warehouse: Path, snapshot: str, current_mae: float | None, ratio: float
) -> str | None:
    """A warning when the backtest error moved a lot since the previous published snapshot."""
    if current_mae is None or not math.isfinite(current_mae):
        return None
    earlier = [
        day
        for day in published_snapshots(warehouse)
        if day < date.fromisoformat(snapshot)
        and layout.table_file(warehouse, "model_backtest", day).exists()
    ]
    if not earlier:
        return None
    previous = pl.read_parquet(
        layout.table_file(warehouse, "model_backtest", earlier[-1]), glob=False
    ).filter(pl.col("scope") == "overall")
    if "selected" in previous.columns:  # since several models are backtested: the scoring one
        previous = previous.filter(pl.col("selected"))
    mae = previous["mae"]
    if mae.len() == 0 or mae[0] is None or mae[0] <= 0:
        return None
    before = float(mae[0])
    change = current_mae / before
    if change > ratio or change < 1 / ratio:
        return (
            f"model backtest drift: holdout MAE {current_mae:.4f} vs {before:.4f} at "
            f"{layout.snapshot_partition(earlier[-1])} ({change:.2f}x; threshold {ratio:g}x)"
        )
    return None
