"""Where a validated batch goes: the accepted rows and the quarantine, or the rejected zone.

A files source's accepted batch lives only as long as its run (the whole history arrives
every time). An incremental source's batch is written to the accepted zone, with its record
(what was extracted, the counts, a fingerprint of the accepted rows, the earliest order) and
its quarantine, only once it has passed every gate: the accepted zone is the record of what
was ingested. A batch a gate rejects is kept in `rejected/orders/<run_id>/` and never counts as
ingested, so a retried run reads it from the source again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from pipelines.context import RunContext
from pipelines.contracts import load_contract
from pipelines.extract.discovery import sha256_file
from pipelines.publish.tables import conform, write_table_file
from pipelines.stage_results import ExtractResult, ValidateResult
from pipelines.storage import files, layout
from pipelines.storage.atomic import swap_in
from pipelines.storage.history import BATCH_FILE, BATCH_QUARANTINE, BATCH_RECORD
from pipelines.storage.jsonfile import write_json
from pipelines.validate.typed_parts import TypedParts


def rows_per_file(con: duckdb.DuckDBPyConnection, accepted: TypedParts, files: int) -> np.ndarray:
    """Accepted rows per landed file (for reconciliation), counted by DuckDB over the parts."""
    accepted.relation(con, "accepted")
    out = np.zeros(files, dtype=np.int64)
    for file, n in con.sql("select _file, count(*) from accepted group by _file").fetchall():
        out[int(file)] = int(n)
    return out


def write_batch(
    ctx: RunContext,
    accepted: TypedParts,
    q: pl.DataFrame,
    extract: ExtractResult,
    result: dict[str, Any],
) -> dict[str, Any]:
    """The accepted rows and the quarantine, staged; an incremental batch swapped into the accepted zone.

    The accepted rows are streamed from the typed parts into one file, in source order, with
    bounded memory (Polars' streaming engine).
    """
    staging = ctx.work_dir / "accepted"
    files.remove_tree(staging)
    layout.restrict(staging)
    columns = [*load_contract("orders").column_names, "_row"]
    scan = pl.concat(
        [pl.scan_parquet(p, glob=False).select(columns) for p in accepted.paths]
        or [pl.LazyFrame(schema=accepted_schema())]
    )
    if accepted.dropped.len():
        scan = scan.filter(~pl.col("_row").cast(pl.UInt64).is_in(accepted.dropped.implode()))
    scan.sink_parquet(staging / BATCH_FILE, maintain_order=True)
    write_quarantine(q, staging / BATCH_QUARANTINE, ctx.run_id)
    result = {
        "accepted_path": str(staging / BATCH_FILE),
        "quarantine_path": str(staging / BATCH_QUARANTINE),
        **result,
    }
    if not ctx.source_spec.incremental:
        return result
    target = layout.accepted_partition(ctx.warehouse, ctx.snapshot_date)
    result |= {
        "accepted_path": str(target / BATCH_FILE),
        "quarantine_path": str(target / BATCH_QUARANTINE),
    }
    first = pl.scan_parquet(staging / BATCH_FILE, glob=False).select(pl.min("order_ts")).collect()
    first_ts = first.item() if first.height else None
    record = {
        "ingest_date": ctx.snapshot_date.isoformat(),
        "run_id": ctx.run_id,
        "fingerprint": sha256_file(staging / BATCH_FILE),
        "min_order_ts": first_ts.isoformat() if first_ts is not None else None,
        "extract": extract,
        "validate": result,
    }
    write_json(staging / BATCH_RECORD, record)
    layout.restrict(ctx.warehouse / layout.ACCEPTED.parts[0])
    swap_in(staging, target)  # the batch counts as ingested only now
    return result


def accepted_schema() -> dict[str, pl.DataType]:
    """The accepted file's columns when no row was accepted: the contract's, and `_row`."""
    return {**load_contract("orders").polars_schema(), "_row": pl.UInt32()}


def nothing_arrived() -> ValidateResult:
    """The result of a landing day whose folder has not arrived (a gap)."""
    return {
        "arrived": False,
        "counts": {"rows_in": 0, "rows_accepted": 0, "rows_quarantined": 0, "rows_duplicate": 0},
        "lines": {"lines_in": 0, "lines_quarantined": 0},
        "per_file": [],
        "quarantine_reasons": {},
        "warnings": [],
        "quiet_day": False,
        "gx": None,
        "quarantine_path": None,
    }


def reason_counts(q: pl.DataFrame) -> dict[str, int]:
    reasons = (
        q.select(pl.col("reason_codes").str.split(",").explode().alias("code"))
        .group_by("code")
        .len()
        .sort("code")
    )
    return dict(zip(reasons["code"].to_list(), reasons["len"].to_list(), strict=True))


def write_quarantine(q: pl.DataFrame, path: Path, run_id: str) -> Path:
    """The quarantine as published: conformed to its contract (lineage helpers dropped)."""
    table = conform(q.drop("_row", "_lines").to_arrow(), load_contract("quarantine_orders"))
    return write_table_file(table, path, {"run_id": run_id})


def keep_rejected(
    ctx: RunContext, q: pl.DataFrame, reason: str, extract: ExtractResult, incremental: bool
) -> Path:
    """Keep a rejected batch for inspection, outside every zone a snapshot reads."""
    kept = ctx.warehouse / layout.REJECTED / ctx.run_id
    layout.restrict(kept.parent.parent)
    kept.mkdir(parents=True, exist_ok=True)
    write_quarantine(q, kept / "quarantine.parquet", ctx.run_id)
    raw_dir = extract.get("raw_dir")
    if incremental and raw_dir and Path(raw_dir).is_dir():
        # never counts as ingested: a retry reads the source again
        files.move(Path(raw_dir), kept / "raw")
    write_json(
        kept / "rejection.json",
        {
            "run_id": ctx.run_id,
            "snapshot_date": ctx.snapshot_date.isoformat(),
            "reason": reason,
            "extract": extract,
        },
    )
    return kept
