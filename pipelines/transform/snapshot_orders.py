"""Stage: shape the accepted orders into the snapshot's modelling input (Polars, lazily).

- History: a files source's accepted batch is the whole history; an incremental source's
  is every accepted batch up to the snapshot's horizon, newest version per order
  (`pipelines/storage/history.py`).
- Cut-off: snapshot D holds accepted orders with `order_ts` before D+1 00:00 UTC; later
  (not future) orders are simply not part of this snapshot.
- Privacy: PII columns never leave this stage in clear -- they are dropped, or, when the
  config asks for a stable key from one (`privacy.hashed_columns`), replaced by an
  HMAC-SHA256 of the normalised value (`pipelines/transform/privacy.py`).
- Money: amounts and costs are converted into the reporting currency with the FX table
  (validation has already quarantined orders in a currency without a rate).
- Types are already strict (validated); timestamps are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from pipelines.context import RunContext
from pipelines.contracts import load_contract
from pipelines.errors import CustvalError
from pipelines.storage.history import accepted_history, batch_fingerprints, horizon
from pipelines.transform.privacy import hash_pii
from pipelines.validate.reference_data import fx_rates


def stage_orders(accepted: pl.LazyFrame, end: datetime, rates: pl.DataFrame) -> pl.LazyFrame:
    """Orders of the snapshot with money in the reporting currency (`fx_rate` kept).

    A filter and a left join to the small FX table (`fx_rates` refuses a currency twice), so
    Polars' streaming engine runs it batch by batch, in source order. Not `replace_strict`:
    Polars ran that in memory, and staging 100M orders peaked at 14.4 GB against 1.3 GB.
    """
    lookup = rates.lazy().select(
        pl.col("currency"), pl.col("rate").cast(pl.Float64).alias("fx_rate")
    )
    return (
        accepted.filter(pl.col("order_ts") < end)
        .join(lookup, on="currency", how="left", maintain_order="left")
        .with_columns(pl.col("amount") * pl.col("fx_rate"), pl.col("cost") * pl.col("fx_rate"))
    )


def run(ctx: RunContext) -> dict[str, Any]:
    config = ctx.config
    contract = load_contract("orders")
    end = ctx.snapshot_end
    rates = fx_rates(config.fx_rates, config.reporting_currency)
    history_until = None
    batches: dict[str, str] | None = None
    if ctx.source_spec.incremental:
        history_until = horizon(ctx.warehouse, ctx.snapshot_date, config.sources.reprocess_days)
        batches = batch_fingerprints(ctx.warehouse, history_until)
        history = accepted_history(ctx.warehouse, history_until)
        if history.is_empty():
            raise CustvalError(
                f"no accepted orders in the batches ingested up to {history_until} in {ctx.warehouse}; ingest one first"
            )
        accepted = history.lazy()
    else:
        accepted = pl.scan_parquet(ctx.load_result("validate")["accepted_path"], glob=False).drop(
            "_row"
        )
    total = accepted.select(pl.len()).collect().item()
    path = ctx.work_dir / "staged_orders.parquet"
    hash_pii(stage_orders(accepted, end, rates), config, contract).sink_parquet(path)
    staged = pl.scan_parquet(path, glob=False)
    rows, unconverted = staged.select(pl.len(), pl.col("fx_rate").null_count()).collect().row(0)
    if rows == 0:
        raise CustvalError(
            f"snapshot {ctx.snapshot_date} has no accepted orders placed before {end:%Y-%m-%d %H:%M} UTC "
            f"({total:,} accepted in all): there is nothing to build it from"
        )
    if unconverted:  # validate quarantines these; reaching here means the FX file changed mid-run
        raise CustvalError(
            f"{unconverted} staged orders have no FX rate into {config.reporting_currency}"
        )
    return ctx.save_result(
        "stage",
        {
            "staged_path": str(path),
            "rows_in_snapshot": rows,
            "rows_after_snapshot": total - rows,
            "history_until": history_until.isoformat() if history_until else None,
            "history_batches": batches,
            "snapshot_end_exclusive": end.isoformat(),
            "hashed_columns": list(config.privacy.hashed_columns),
        },
    )
