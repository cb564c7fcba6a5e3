"""Validate: decide, for every landed row, accepted / quarantined / exact duplicate.

1. Parse every value strictly against the orders contract (`parse.py`); records that could
   not be read or values that do not parse are quarantined with their reason code.
2. Collapse exact duplicates and resolve conflicting copies of an order (`dedupe.py`).
3. Run the contract's Great Expectations suite on the typed batch (`expectations.py`,
   `gx_check.py`): failures of `quarantine` rules quarantine the failing rows, failures of
   `reject` rules stop the run, `warn` rules are recorded.
4. Batch gates and reconciliation: the quarantined share -- of physical lines, so a stray
   quote that spoils many lines counts as many -- must stay below the contract's threshold,
   and the counts must reconcile, per source file and in total:
   rows_in = rows_accepted + rows_quarantined + rows_duplicate.

Nothing is published here. A files source's accepted batch and the quarantine go to the
run's work dir; an incremental source's batch goes to the accepted zone only when it passed
every gate (`history.py`). A rejected batch is kept for inspection under
`DIR/rejected/orders/<run_id>/` and never counts as ingested.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipelines.config import Config, ConfigError
from pipelines.context import RunContext
from pipelines.contracts import Contract, load_contract
from pipelines.errors import BatchRejected, ReconciliationError
from pipelines.publish.tables import conform, write_table_file
from pipelines.storage.atomic import swap_in
from pipelines.storage.history import BATCH_FILE, BATCH_QUARANTINE, BATCH_RECORD, accepted_partition
from pipelines.storage.jsonfile import read_json, write_json
from pipelines.storage.snapshots import restrict
from pipelines.validate import quarantine
from pipelines.validate.dedupe import deduplicate
from pipelines.validate.parse import CODES, RULES, parse_batch
from pipelines.validate.reference_data import fx_rates

DOCS_DIR = Path("docs") / "validation"
REJECTED_ZONE = Path("rejected") / "orders"
ZERO = {"rows_in": 0, "rows_accepted": 0, "rows_quarantined": 0, "rows_duplicate": 0}


def contract_for_run(config: Config) -> Contract:
    """The orders contract with the config's overrides of its thresholds and severities."""
    contract = load_contract("orders")
    v = config.validation

    def rule_named(kind: str, column: str | None = None) -> str | None:
        rules = contract.row_rules + list(contract.batch_rules)
        return next(
            (r.name for r in rules if r.kind == kind and (column is None or r.column == column)),
            None,
        )

    overrides: list[tuple[str | None, dict[str, Any]]] = [
        (rule_named("not_before"), {"earliest": v.earliest_order_date.isoformat()}),
    ]
    if v.accepted_currencies is not None:
        overrides.append(
            (rule_named("accepted_values", "currency"), {"values": list(v.accepted_currencies)})
        )
    if v.future_skew_minutes is not None:
        overrides.append((rule_named("not_in_future"), {"skewMinutes": v.future_skew_minutes}))
    if v.max_quarantined_percent is not None:
        overrides.append(
            (rule_named("quarantined_share"), {"maxPercent": v.max_quarantined_percent})
        )
    if v.row_count_tolerance_percent is not None:
        overrides.append(
            (
                rule_named("row_count_vs_trailing_average"),
                {"tolerancePercent": v.row_count_tolerance_percent},
            )
        )
    if v.trailing_window is not None:
        overrides.append(
            (rule_named("row_count_vs_trailing_average"), {"window": v.trailing_window})
        )
    for name, params in overrides:
        if name is not None:
            contract = contract.with_rule_params(name, **params)
    unknown = sorted(set(v.rule_severity) - set(contract.rule_names))
    if unknown:
        raise ConfigError(
            f"validation.rule_severity names rule(s) {', '.join(unknown)} that the orders contract does not have "
            f"(its rules: {', '.join(contract.rule_names)})"
        )
    for name, severity in v.rule_severity.items():
        contract = contract.with_rule_params(name, severity=severity)
    if v.allow_empty_batch is not None:
        contract = replace(contract, allow_empty_batch=v.allow_empty_batch)
    return contract


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
        manifest = (
            read_json(
                ctx.warehouse / "runs" / f"snapshot_date={snap.isoformat()}" / "manifest.json"
            )
            or {}
        )
        if manifest.get("ingested_by_this_run", True) and "counts" in manifest:
            earlier.append(manifest["counts"]["rows_accepted"])
        if len(earlier) >= window:
            break
    if not earlier:
        return None
    avg = sum(earlier) / len(earlier)
    return int(np.floor(avg * (1 - tolerance))), int(np.ceil(avg * (1 + tolerance)))


def check_not_empty(
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


def _file_of(rows: pl.Series, offsets: np.ndarray) -> np.ndarray:
    return np.searchsorted(offsets, rows.to_numpy(), side="right") - 1


def _raw_rows(
    raw_dir: Path, files: list[dict[str, Any]], offsets: np.ndarray, rows: pl.Series
) -> pl.DataFrame:
    """The landed raw rows with these batch row numbers, values as text."""
    wanted = np.sort(rows.to_numpy())
    parts = []
    for i, f in enumerate(files):
        lo, hi = offsets[i], offsets[i] + f["rows"]
        mine = wanted[(wanted >= lo) & (wanted < hi)]
        if not len(mine):
            continue
        raw = pl.read_parquet(raw_dir / f["landed"], glob=False).with_row_index("_row", int(lo))
        raw = raw.filter(pl.col("_row").is_in(pl.Series(mine.astype(np.uint32))))
        parts.append(
            raw.with_columns(pl.exclude("_row", "_source_line", "_source_lines").cast(pl.String))
        )
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


@dataclass
class _Batch:
    """The landed batch as validate sees it: files, their row offsets, and where they lie."""

    raw_dir: Path
    files: list[dict[str, Any]]
    offsets: np.ndarray

    def raw(self, i: int) -> pl.DataFrame:
        return pl.read_parquet(self.raw_dir / self.files[i]["landed"], glob=False).with_row_index(
            "_row", int(self.offsets[i])
        )

    def rows(self, rows: pl.Series) -> pl.DataFrame:
        return _raw_rows(self.raw_dir, self.files, self.offsets, rows)


def _parse(
    batch: _Batch, contract: Contract
) -> tuple[pl.DataFrame, list[pl.DataFrame], list[pl.Series]]:
    """Step 1: typed valid rows; quarantine parts; identical unreadable records as duplicates."""
    typed_parts: list[pl.DataFrame] = []
    q_parts: list[pl.DataFrame] = []
    for i, f in enumerate(batch.files):
        raw = batch.raw(i)
        parsed = parse_batch(raw, contract, check_columns=contract.pii_columns)
        if parsed.failures.height:
            bad = raw.filter(parsed.failed).join(parsed.failures, on="_row")
            q_parts.append(quarantine.records(bad, f["columns"], pl.col(CODES), pl.col(RULES)))
        typed_parts.append(parsed.typed.filter(~parsed.failed))
    typed = (
        pl.concat(typed_parts)
        if typed_parts
        else pl.DataFrame(schema={**contract.polars_schema(), "_row": pl.UInt32})
    )
    typed = typed.with_columns(
        pl.Series("_file", _file_of(typed["_row"], batch.offsets), dtype=pl.Int32)
    )
    dup_rows: list[pl.Series] = []
    if q_parts:  # identical unreadable/unparseable records are exact duplicates too
        parse_q = pl.concat(q_parts)
        first = parse_q.select(pl.struct("raw_values", "raw_line").is_first_distinct()).to_series()
        dup_rows.append(parse_q.filter(~first)["_row"])
        q_parts = [parse_q.filter(first)]
    return typed, q_parts, dup_rows


def _run_gx(
    ctx: RunContext, contract: Contract, candidates: pl.DataFrame
) -> tuple[Any, dict[int, tuple[list[str], list[str]]], list[str], tuple[int, int] | None]:
    """Step 3: the generated suite; row failures by row, warnings, and the rejections raised."""
    from pipelines.validate.gx.runner import ROW_KEY, run_suite
    from pipelines.validate.gx.suite import SuiteInputs, build_suite

    gx_columns = [c for c in contract.column_names if c not in contract.pii_columns]
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
            "; ".join(rejected)
            + f" -- nothing published; see {report.docs_page or report.docs_index}"
        )
    return report, row_failures, warnings, bounds


def _share_gate(
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


def run(ctx: RunContext) -> dict[str, Any]:
    config = ctx.config
    contract = contract_for_run(config)
    rates = fx_rates(config.fx_rates, config.reporting_currency)  # a bad FX file fails first
    extract = ctx.load_result("extract")
    incremental = ctx.source_spec.incremental
    if not extract.get("arrived", True):  # a landing day whose folder has not arrived: a gap
        return ctx.save_result("validate", _nothing_arrived())
    files = extract["files"]
    batch = _Batch(
        Path(extract["raw_dir"]),
        files,
        np.cumsum([0] + [f["rows"] for f in files])[:-1].astype(np.int64),
    )
    rows_in = sum(f["rows"] for f in files)
    note = check_not_empty(contract, rows_in, files, incremental, config)
    columns = contract.column_names

    typed, q_parts, dup_rows = _parse(batch, contract)  # 1
    dd = deduplicate(typed, columns)  # 2
    dup_rows.append(dd.duplicates["_row"].cast(pl.UInt64))
    candidates = dd.kept
    if dd.conflicts.height:
        raw = batch.rows(dd.conflicts["_row"])
        q_parts.append(
            quarantine.records(
                raw,
                [c for c in columns if c in raw.columns],
                pl.lit(["DUPLICATE_CONFLICT"]),
                pl.lit(["order_id.unique"]),
            )
        )
    gx_summary: dict[str, Any]
    warnings: list[str] = []
    row_failures: dict[int, tuple[list[str], list[str]]] = {}
    if candidates.height:  # 3
        report, row_failures, warnings, bounds = _run_gx(ctx, contract, candidates)
        from pipelines.validate.gx.suite import gx_rules

        gx_summary = {
            "success": report.success,
            "expectations": len(report.outcomes),
            "rules_checked": [r.name for r in gx_rules(contract)],
            "docs_index": report.docs_index,
            "docs_page": report.docs_page,
            "row_count_bounds": list(bounds) if bounds else None,
        }
    else:
        gx_summary = {"success": True, "expectations": 0, "skipped": "no rows to validate"}
    # Money must be convertible into the reporting currency (checked on otherwise valid rows:
    # an invalid currency code is already quarantined for what it is).
    for row in candidates.filter(~pl.col("currency").is_in(rates["currency"]))["_row"].to_list():
        row_failures.setdefault(int(row), (["NO_FX_RATE"], ["currency.fx_rate"]))
    accepted = candidates
    if row_failures:
        failed_rows = pl.Series("_row", sorted(row_failures), dtype=pl.UInt64)
        raw = batch.rows(failed_rows).with_columns(pl.col("_row").cast(pl.UInt64))
        codes = pl.DataFrame(
            {
                "_row": failed_rows,
                CODES: [row_failures[r][0] for r in failed_rows.to_list()],
                RULES: [row_failures[r][1] for r in failed_rows.to_list()],
            }
        )
        q_parts.append(
            quarantine.records(
                raw.join(codes, on="_row"),
                [c for c in columns if c in raw.columns],
                pl.col(CODES),
                pl.col(RULES),
            )
        )
        accepted = candidates.filter(~pl.col("_row").cast(pl.UInt64).is_in(failed_rows))
    q = quarantine.finalize(q_parts, ctx.run_id, ctx.started_at)
    duplicates = (
        pl.concat([s.cast(pl.UInt64) for s in dup_rows])
        if dup_rows
        else pl.Series("_row", [], pl.UInt64)
    )

    counts = reconcile(files, batch.offsets, accepted["_row"], q["_row"], duplicates)  # 4
    total = counts["total"]
    lines = {
        "lines_in": sum(
            f.get("lines", f["rows"]) - f.get("header_lines", 0) - f.get("blank_lines", 0)
            for f in files
        ),
        "lines_quarantined": int(q["_lines"].sum() or 0),
    }
    too_many = _share_gate(contract, lines["lines_in"], lines["lines_quarantined"], total)
    if too_many is not None:
        if contract.batch_rule("quarantined_share").severity == "reject":  # type: ignore[union-attr]
            kept = _reject(ctx, q, too_many, extract, incremental)
            raise BatchRejected(
                f"{too_many} -- nothing published; the batch and its quarantine are kept in {kept}"
            )
        warnings.append(too_many)
    if note:
        warnings.append(note)

    staging = ctx.work_dir / "accepted"
    shutil.rmtree(staging, ignore_errors=True)
    restrict(staging)
    accepted.sort("_row").select(*columns, "_row").write_parquet(staging / BATCH_FILE)
    q_path = _write_quarantine(q, staging / BATCH_QUARANTINE, ctx.run_id)
    reasons = (
        q.select(pl.col("reason_codes").str.split(",").explode().alias("code"))
        .group_by("code")
        .len()
        .sort("code")
    )
    result = {
        "accepted_path": str(staging / BATCH_FILE),
        "quarantine_path": str(q_path),
        "counts": total,
        "lines": lines,
        "per_file": counts["per_file"],
        "quarantine_reasons": dict(
            zip(reasons["code"].to_list(), reasons["len"].to_list(), strict=True)
        ),
        "warnings": warnings,
        "quiet_day": bool(note and incremental),
        "gx": gx_summary,
    }
    if incremental:  # the batch counts as ingested only now, having passed every gate
        target = accepted_partition(ctx.warehouse, ctx.snapshot_date)
        result["accepted_path"] = str(target / BATCH_FILE)
        result["quarantine_path"] = str(target / BATCH_QUARANTINE)
        record = {
            "ingest_date": ctx.snapshot_date.isoformat(),
            "run_id": ctx.run_id,
            "fingerprint": _fingerprint(staging / BATCH_FILE),
            "min_order_ts": accepted["order_ts"].min().isoformat() if accepted.height else None,  # type: ignore[union-attr]
            "extract": extract,
            "validate": result,
        }
        write_json(staging / BATCH_RECORD, record)
        restrict(ctx.warehouse / "accepted")
        swap_in(staging, target)
    return ctx.save_result("validate", result)


def _nothing_arrived() -> dict[str, Any]:
    return {
        "arrived": False,
        "counts": dict(ZERO),
        "lines": {"lines_in": 0, "lines_quarantined": 0},
        "per_file": [],
        "quarantine_reasons": {},
        "warnings": [],
        "quiet_day": False,
        "gx": None,
        "quarantine_path": None,
    }


def _fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_quarantine(q: pl.DataFrame, path: Path, run_id: str) -> Path:
    """The quarantine as published: conformed to its contract (lineage helpers dropped)."""
    table = conform(q.drop("_row", "_lines").to_arrow(), load_contract("quarantine_orders"))
    return write_table_file(table, path, {"run_id": run_id})


def _reject(
    ctx: RunContext, q: pl.DataFrame, reason: str, extract: dict[str, Any], incremental: bool
) -> Path:
    """Keep a rejected batch for inspection, outside every zone a snapshot reads."""
    kept = ctx.warehouse / REJECTED_ZONE / ctx.run_id
    restrict(kept.parent.parent)
    kept.mkdir(parents=True, exist_ok=True)
    _write_quarantine(q, kept / "quarantine.parquet", ctx.run_id)
    raw_dir = extract.get("raw_dir")
    if incremental and raw_dir and Path(raw_dir).is_dir():
        shutil.move(
            raw_dir, kept / "raw"
        )  # never counts as ingested: a retry reads the source again
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
