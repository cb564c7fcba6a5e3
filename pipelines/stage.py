"""Stage: shape the accepted orders into the snapshot's modelling input (Polars, lazily).

- Cut-off: snapshot D holds accepted orders with `order_ts` before D+1 00:00 UTC; later
  (not future) orders are simply not part of this snapshot and are counted.
- Privacy: PII columns never leave this stage in clear -- they are dropped, or, when the
  config asks for a stable key from one (`privacy.hashed_columns`), replaced by an
  HMAC-SHA256 of the normalised value (`pipelines/privacy.py`).
- Types are already strict (validated); timestamps are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import polars as pl

from pipelines.config import load_config
from pipelines.context import RunContext
from pipelines.contracts import load_contract
from pipelines.privacy import hash_pii


def snapshot_end(ctx: RunContext) -> datetime:
    """Exclusive upper bound of the snapshot: the start of the next day, UTC."""
    return datetime.combine(ctx.snapshot_date + timedelta(days=1), time(0), tzinfo=UTC)


def stage_orders(accepted: pl.LazyFrame, end: datetime) -> pl.DataFrame:
    return accepted.filter(pl.col("order_ts") < end).collect()


def run(ctx: RunContext) -> dict[str, Any]:
    config = load_config(ctx.config_path)
    contract = load_contract("orders")
    validated = ctx.load_result("validate")
    end = snapshot_end(ctx)
    staged = stage_orders(pl.scan_parquet(validated["accepted_path"]), end)
    staged = hash_pii(staged, config, contract)
    path = ctx.work_dir / "staged_orders.parquet"
    staged.write_parquet(path)
    return ctx.save_result(
        "stage",
        {
            "staged_path": str(path),
            "rows_in_snapshot": staged.height,
            "rows_after_snapshot": validated["counts"]["rows_accepted"] - staged.height,
            "snapshot_end_exclusive": end.isoformat(),
            "hashed_columns": [c for c in staged.columns if c.endswith("_hmac")],
        },
    )
