"""Batch gates and reconciliation: the rules that judge a batch as a whole.

- the empty-batch gate, for a full file drop (a quiet day of an incremental source is normal);
- the quarantined share, counted in physical lines (a stray quote that spoils many lines counts
  as many);
- the row count against the trailing average of earlier snapshots (a warning);
- reconciliation: rows_in = rows_accepted + rows_quarantined + rows_duplicate, per source
  file and in total.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.config import Config
from pipelines.context import RunContext
from pipelines.contracts import Contract
from pipelines.errors import BatchRejected, ReconciliationError
from pipelines.storage import layout
from pipelines.storage.jsonfile import read_json
from pipelines.validate.batch import file_of


def trailing_row_bounds(ctx: RunContext, contract: Contract) -> tuple[int, int] | None:
    """Allowed accepted-row range from the average of the previous snapshots' manifests."""
    from pipelines.storage.snapshots import published_snapshots

    rule = contract.batch_rule("row_count_vs_trailing_average")
    if rule is None:
        return None
    window = int(rule.params.get("window", 7))
    tolerance = float(rule.params.get("tolerancePercent", 50)) / 100
    earlier = []
    for snap in reversed(published_snapshots(ctx.warehouse)):
        if snap >= ctx.snapshot_date:
            continue
        manifest = read_json(layout.manifest_path(ctx.warehouse, snap)) or {}
        if manifest.get("ingested_by_this_run", True) and "counts" in manifest:
            earlier.append(manifest["counts"]["rows_accepted"])
        if len(earlier) >= window:
            break
    if not earlier:
        return None
    avg = sum(earlier) / len(earlier)
    return int(np.floor(avg * (1 - tolerance))), int(np.ceil(avg * (1 + tolerance)))


def empty_batch_gate(
    contract: Contract, rows_in: int, files: list[dict[str, Any]], incremental: bool, config: Config
) -> str | None:
    """The empty-batch gate: for a full file drop; a quiet day of an incremental source is normal."""
    if rows_in > 0:
        return None
    allowed = config.validation.allow_empty_batch
    if incremental and allowed is None:
        return "quiet day: the source delivered no new rows; the snapshot is built from the accepted history"
    rule = contract.batch_rule("row_count")
    if rule is None or contract.allow_empty_batch:
        return "the batch is empty (allowed by the configuration)"
    names = (
        ", ".join(Path(f["path"]).name if f["format"] != "postgres" else f["path"] for f in files)
        or "none"
    )
    raise BatchRejected(
        f"rule {rule.name} failed: the batch has no rows (files: {names}); a full file drop with no orders "
        "means the source failed (set validation.allow_empty_batch: true to accept empty batches) -- nothing published"
    )


def quarantined_share_gate(
    contract: Contract, lines_in: int, lines_quarantined: int, rows: dict[str, int]
) -> str | None:
    """Step 4: the quarantined share of the batch's physical lines; a message when it is too high."""
    rule = contract.batch_rule("quarantined_share")
    if rule is None or lines_in == 0:
        return None
    share = 100 * lines_quarantined / lines_in
    limit = float(rule.params.get("maxPercent", 5))
    if share < limit:
        return None
    return (
        f"rule {rule.name} failed: {lines_quarantined:,} of {lines_in:,} lines quarantined ({share:.2f}% >= {limit:g}%; "
        f"{rows['rows_quarantined']:,} of {rows['rows_in']:,} records)"
    )


def lines_of(files: list[dict[str, Any]], quarantined_lines: int) -> dict[str, int]:
    """Data lines read (header and blank lines aside) and lines quarantined."""
    lines_in = sum(
        f.get("lines", f["rows"]) - f.get("header_lines", 0) - f.get("blank_lines", 0)
        for f in files
    )
    return {"lines_in": lines_in, "lines_quarantined": quarantined_lines}


def rows_per_file(rows: pl.Series, offsets: np.ndarray) -> np.ndarray:
    """How many of these batch row numbers fall in each file."""
    if rows.len() == 0:
        return np.zeros(len(offsets), dtype=np.int64)
    return np.bincount(file_of(rows, offsets), minlength=len(offsets))


def reconcile(
    files: list[dict[str, Any]],
    acc: np.ndarray,
    qua: np.ndarray,
    dup: np.ndarray,
) -> dict[str, Any]:
    """Counts per source file and in total (accepted, quarantined, duplicate rows per file);
    raises unless every file adds up."""
    rows_in = np.array([f["rows"] for f in files], dtype=np.int64)
    per = []
    for i, f in enumerate(files):
        entry = {
            "file": f["path"],
            "rows_in": int(rows_in[i]),
            "rows_accepted": int(acc[i]),
            "rows_quarantined": int(qua[i]),
            "rows_duplicate": int(dup[i]),
        }
        if (
            entry["rows_in"]
            != entry["rows_accepted"] + entry["rows_quarantined"] + entry["rows_duplicate"]
        ):
            raise ReconciliationError(
                f"{f['path']}: rows_in {entry['rows_in']:,} != accepted {entry['rows_accepted']:,} + "
                f"quarantined {entry['rows_quarantined']:,} + duplicate {entry['rows_duplicate']:,}"
            )
        per.append(entry)
    total = {
        "rows_in": int(rows_in.sum()),
        "rows_accepted": int(acc.sum()),
        "rows_quarantined": int(qua.sum()),
        "rows_duplicate": int(dup.sum()),
    }
    if (
        total["rows_in"]
        != total["rows_accepted"] + total["rows_quarantined"] + total["rows_duplicate"]
    ):
        raise ReconciliationError(f"batch does not reconcile: {total}")
    return {"total": total, "per_file": per}
