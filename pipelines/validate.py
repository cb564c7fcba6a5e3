"""Validate: decide, for every landed row, accepted / quarantined / exact duplicate.

1. Parse every value strictly against the orders contract (`parse.py`); records that could
   not be read or values that do not parse are quarantined with their reason code.
2. Collapse exact duplicates and resolve conflicting copies of an order (`dedupe.py`).
3. Run the contract's Great Expectations suite on the typed batch (`expectations.py`,
   `gx_check.py`): failures of `quarantine` rules quarantine the failing rows, failures of
   `reject` rules stop the run, `warn` rules are recorded.
4. Batch gates: the quarantined share must stay below the contract's threshold, and the
   counts must reconcile, per source file and in total:
   rows_in = rows_accepted + rows_quarantined + rows_duplicate.

Nothing is published here; the accepted batch and the quarantine go to the run's work dir.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines import quarantine
from pipelines.config import Config, load_config
from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.dedupe import deduplicate
from pipelines.errors import BatchRejected, ReconciliationError
from pipelines.history import BATCH_RECORD, accepted_partition
from pipelines.parse import CODES, RULES, parse_batch
from pipelines.publish import swap_in
from pipelines.reference_data import fx_rates

DOCS_DIR = Path("docs") / "validation"


def contract_for_run(config: Config) -> Contract:
    """The orders contract with the config's overrides of its thresholds applied."""
    contract = load_contract("orders")
    v = config.validation

    def rule_named(kind: str, column: str | None = None) -> str | None:
        rules = contract.row_rules + list(contract.batch_rules)
        return next((r.name for r in rules if r.kind == kind and (column is None or r.column == column)), None)

    overrides: list[tuple[str | None, dict[str, Any]]] = []
    if v.accepted_currencies is not None:
        overrides.append((rule_named("accepted_values", "currency"), {"values": list(v.accepted_currencies)}))
    if v.future_skew_minutes is not None:
        overrides.append((rule_named("not_in_future"), {"skewMinutes": v.future_skew_minutes}))
    if v.max_quarantined_percent is not None:
        overrides.append((rule_named("quarantined_share"), {"maxPercent": v.max_quarantined_percent}))
    if v.row_count_tolerance_percent is not None:
        overrides.append((rule_named("row_count_vs_trailing_average"), {"tolerancePercent": v.row_count_tolerance_percent}))
    if v.trailing_window is not None:
        overrides.append((rule_named("row_count_vs_trailing_average"), {"window": v.trailing_window}))
    for name, params in overrides:
        if name is not None:
            contract = contract.with_rule_params(name, **params)
    return contract


def trailing_row_bounds(ctx: RunContext, contract: Contract) -> tuple[int, int] | None:
    """Allowed accepted-row range from the average of the previous snapshots' manifests."""
    rule = contract.batch_rule("row_count_vs_trailing_average")
    if rule is None:
        return None
    window = int(rule.params.get("window", 7))
    tolerance = float(rule.params.get("tolerancePercent", 50)) / 100
    runs = ctx.warehouse / "runs"
    earlier = []
    for path in sorted(runs.glob("snapshot_date=*/manifest.json"), reverse=True):
        snap = path.parent.name.split("=", 1)[1]
        if snap < ctx.snapshot_date.isoformat():
            try:
                earlier.append(json.loads(path.read_text())["counts"]["rows_accepted"])
            except (KeyError, ValueError):
                continue
        if len(earlier) >= window:
            break
    if not earlier:
        return None
    avg = sum(earlier) / len(earlier)
    return int(np.floor(avg * (1 - tolerance))), int(np.ceil(avg * (1 + tolerance)))


def check_not_empty(contract: Contract, rows_in: int, files: list[dict[str, Any]]) -> None:
    rule = contract.batch_rule("row_count")
    if rule is None or contract.allow_empty_batch:
        return
    minimum = int(rule.params.get("threshold", 0)) + 1
    if rows_in < minimum:
        names = ", ".join(Path(f["path"]).name if f["format"] != "postgres" else f["path"] for f in files)
        raise BatchRejected(
            f"rule {rule.name} failed: the batch has {rows_in} rows (files: {names}); expected at least "
            f"{minimum} (set allowEmptyBatch in the contract to accept empty batches) -- nothing published"
        )


def _file_of(rows: pl.Series, offsets: np.ndarray) -> np.ndarray:
    return np.searchsorted(offsets, rows.to_numpy(), side="right") - 1


def _raw_rows(raw_dir: Path, files: list[dict[str, Any]], offsets: np.ndarray, rows: pl.Series) -> pl.DataFrame:
    """The landed raw rows with these batch row numbers, values as text."""
    wanted = np.sort(rows.to_numpy())
    parts = []
    for i, f in enumerate(files):
        lo, hi = offsets[i], offsets[i] + f["rows"]
        mine = wanted[(wanted >= lo) & (wanted < hi)]
        if not len(mine):
            continue
        raw = pl.read_parquet(raw_dir / f["landed"]).with_row_index("_row", int(lo))
        raw = raw.filter(pl.col("_row").is_in(pl.Series(mine.astype(np.uint32))))
        parts.append(raw.with_columns(pl.exclude("_row", "_source_line").cast(pl.String)))
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def run(ctx: RunContext) -> dict[str, Any]:
    config = load_config(ctx.config_path)
    contract = contract_for_run(config)
    rates = fx_rates(config.fx_rates, config.reporting_currency)  # a bad FX file fails first
    extract = ctx.load_result("extract")
    raw_dir = Path(extract["raw_dir"])
    files = extract["files"]
    offsets = np.cumsum([0] + [f["rows"] for f in files])[:-1].astype(np.int64)
    columns = contract.column_names
    check_not_empty(contract, sum(f["rows"] for f in files), files)

    # 1. parse ------------------------------------------------------------------------------
    typed_parts: list[pl.DataFrame] = []
    q_parts: list[pl.DataFrame] = []
    for i, f in enumerate(files):
        raw = pl.read_parquet(raw_dir / f["landed"]).with_row_index("_row", int(offsets[i]))
        parsed = parse_batch(raw, contract, check_columns=contract.pii_columns)
        if parsed.failures.height:
            bad = raw.filter(parsed.failed).join(parsed.failures, on="_row")
            q_parts.append(quarantine.records(bad, f["columns"], pl.col(CODES), pl.col(RULES)))
        typed_parts.append(parsed.typed.filter(~parsed.failed))
    typed = pl.concat(typed_parts) if typed_parts else pl.DataFrame(schema={**contract.polars_schema(), "_row": pl.UInt32})
    typed = typed.with_columns(pl.Series("_file", _file_of(typed["_row"], offsets), dtype=pl.Int32))

    # Identical unreadable/unparseable records are exact duplicates too.
    parse_q = pl.concat(q_parts) if q_parts else None
    dup_rows: list[pl.Series] = []
    if parse_q is not None:
        first = parse_q.select(pl.struct("raw_values", "raw_line").is_first_distinct()).to_series()
        dup_rows.append(parse_q.filter(~first)["_row"])
        q_parts = [parse_q.filter(first)]

    # 2. duplicates -------------------------------------------------------------------------
    dd = deduplicate(typed, columns)
    dup_rows.append(dd.duplicates["_row"].cast(pl.UInt64))
    candidates = dd.kept
    if dd.conflicts.height:
        raw = _raw_rows(raw_dir, files, offsets, dd.conflicts["_row"])
        q_parts.append(
            quarantine.records(
                raw,
                [c for c in columns if c in raw.columns],
                pl.lit(["DUPLICATE_CONFLICT"]),
                pl.lit(["order_id.unique"]),
            )
        )

    # 3. Great Expectations -----------------------------------------------------------------
    from pipelines.expectations import SuiteInputs, build_suite, gx_rules
    from pipelines.gx_check import ROW_KEY, run_suite

    gx_columns = [c for c in columns if c not in contract.pii_columns]
    bounds = trailing_row_bounds(ctx, contract)
    report = run_suite(
        candidates.select(*gx_columns, pl.col("_row").cast(pl.Int64).alias(ROW_KEY)),
        lambda: build_suite(contract, SuiteInputs(now=ctx.started_at, row_count_bounds=bounds)),
        ctx.warehouse / DOCS_DIR,
        run_name=ctx.run_id,
    )
    warnings: list[str] = []
    rejected: list[str] = []
    row_failures: dict[int, tuple[list[str], list[str]]] = {}
    for outcome in report.outcomes:
        if outcome.success:
            continue
        if outcome.severity == "warn":
            warnings.append(outcome.describe())
        elif outcome.severity == "quarantine" and outcome.unexpected_rows:
            for row in outcome.unexpected_rows:
                codes, rules = row_failures.setdefault(row, ([], []))
                codes.append(outcome.reason_code or "CONTRACT_VIOLATION")
                rules.append(outcome.rule)
        else:
            rejected.append(outcome.describe())
    if rejected:
        raise BatchRejected(
            "; ".join(rejected) + f" -- nothing published; see {report.docs_page or report.docs_index}"
        )
    # Money must be convertible into the reporting currency (checked on otherwise valid rows:
    # an invalid currency code is already quarantined for what it is).
    no_rate = candidates.filter(~pl.col("currency").is_in(rates["currency"]))["_row"]
    for row in no_rate.to_list():
        if int(row) not in row_failures:
            row_failures[int(row)] = (["NO_FX_RATE"], ["currency.fx_rate"])
    if row_failures:
        rows = pl.Series("_row", sorted(row_failures), dtype=pl.UInt64)
        raw = _raw_rows(raw_dir, files, offsets, rows)
        codes = pl.DataFrame(
            {
                "_row": rows,
                CODES: [row_failures[r][0] for r in rows.to_list()],
                RULES: [row_failures[r][1] for r in rows.to_list()],
            }
        )
        raw = raw.with_columns(pl.col("_row").cast(pl.UInt64)).join(codes, on="_row")
        q_parts.append(quarantine.records(raw, [c for c in columns if c in raw.columns], pl.col(CODES), pl.col(RULES)))
        accepted = candidates.filter(~pl.col("_row").cast(pl.UInt64).is_in(rows))
    else:
        accepted = candidates

    q = quarantine.finalize(q_parts, ctx.run_id, ctx.started_at)
    duplicates = pl.concat([s.cast(pl.UInt64) for s in dup_rows]) if dup_rows else pl.Series("_row", [], pl.UInt64)

    # 4. batch gates and reconciliation -----------------------------------------------------
    counts = reconcile(files, offsets, accepted["_row"], q["_row"], duplicates)
    share_rule = contract.batch_rule("quarantined_share")
    total = counts["total"]
    if share_rule is not None and total["rows_in"] > 0:
        share = 100 * total["rows_quarantined"] / total["rows_in"]
        limit = float(share_rule.params.get("maxPercent", 5))
        if share >= limit:
            message = (
                f"rule {share_rule.name} failed: {total['rows_quarantined']:,} of {total['rows_in']:,} rows "
                f"quarantined ({share:.2f}% >= {limit:g}%)"
            )
            if share_rule.severity == "reject":
                _write_quarantine(ctx, q)  # kept in the work dir for inspection
                raise BatchRejected(f"{message} -- nothing published; quarantine kept in {ctx.work_dir}")
            warnings.append(message)

    # Incremental sources keep every accepted batch (with its record) in the accepted zone;
    # a files source's batch is the whole history and lives only as long as the run.
    incremental = ctx.source_spec.incremental
    staging = ctx.work_dir / "accepted"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    accepted.sort("_row").select(*columns, "_row").write_parquet(staging / "part-0.parquet")
    target = accepted_partition(ctx.warehouse, ctx.snapshot_date) if incremental else staging
    q_path = _write_quarantine(ctx, q)
    reasons = (
        q.select(pl.col("reason_codes").str.split(",").explode().alias("code"))
        .group_by("code")
        .len()
        .sort("code")
    )
    result = {
        "accepted_path": str(target / "part-0.parquet"),
        "quarantine_path": str(q_path),
        "counts": total,
        "per_file": counts["per_file"],
        "quarantine_reasons": dict(zip(reasons["code"].to_list(), reasons["len"].to_list())),
        "warnings": warnings,
        "gx": {
            "success": report.success,
            "expectations": len(report.outcomes),
            "rules_checked": [r.name for r in gx_rules(contract)],
            "docs_index": report.docs_index,
            "docs_page": report.docs_page,
            "row_count_bounds": list(bounds) if bounds else None,
        },
    }
    if incremental:
        record = {"ingest_date": ctx.snapshot_date.isoformat(), "run_id": ctx.run_id, "extract": extract, "validate": result}
        (staging / BATCH_RECORD).write_text(json.dumps(record, indent=2, default=str))
        swap_in(staging, target)
    return ctx.save_result("validate", result)


def _write_quarantine(ctx: RunContext, q: pl.DataFrame) -> Path:
    path = ctx.work_dir / "quarantine.parquet"
    q.write_parquet(path)
    return path


def reconcile(
    files: list[dict[str, Any]],
    offsets: np.ndarray,
    accepted_rows: pl.Series,
    quarantined_rows: pl.Series,
    duplicate_rows: pl.Series,
) -> dict[str, Any]:
    """Counts per source file and in total; raises unless every file adds up."""
    n = len(files)

    def per_file(rows: pl.Series) -> np.ndarray:
        if rows.len() == 0:
            return np.zeros(n, dtype=np.int64)
        return np.bincount(_file_of(rows, offsets), minlength=n)

    acc, qua, dup = per_file(accepted_rows), per_file(quarantined_rows), per_file(duplicate_rows)
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
        if entry["rows_in"] != entry["rows_accepted"] + entry["rows_quarantined"] + entry["rows_duplicate"]:
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
    if total["rows_in"] != total["rows_accepted"] + total["rows_quarantined"] + total["rows_duplicate"]:
        raise ReconciliationError(f"batch does not reconcile: {total}")
    return {"total": total, "per_file": per}
