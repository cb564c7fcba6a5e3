"""The row-level steps of validation, in order, each adding to one `Outcome`.

1. parse: every value strictly against the contract (`parse.py`); unreadable records and
   values that do not parse are quarantined with their reason codes;
2. dedupe: exact copies collapse and are counted; conflicting copies are quarantined (`dedupe.py`);
3. expectations: the contract's Great Expectations suite (`gx/`): `quarantine` rules
   quarantine the failing rows, `reject` rules stop the run, `warn` rules are recorded;
4. reference data: money must convert into the reporting currency (`reference_data.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pipelines.context import RunContext
from pipelines.contracts import Contract
from pipelines.errors import BatchRejected
from pipelines.storage import layout
from pipelines.validate import quarantine
from pipelines.validate.batch import LandedBatch, file_of
from pipelines.validate.dedupe import deduplicate
from pipelines.validate.gates import trailing_row_bounds
from pipelines.validate.parse import CODES, RULES, parse_batch

RowFailures = dict[int, tuple[list[str], list[str]]]  # row -> (reason codes, rules)


@dataclass
class Outcome:
    """What the steps found: quarantine candidates, duplicate rows, warnings."""

    quarantine_parts: list[pl.DataFrame] = field(default_factory=list)
    duplicate_rows: list[pl.Series] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def quarantine(self, ctx: RunContext) -> pl.DataFrame:
        return quarantine.finalize(self.quarantine_parts, ctx.run_id, ctx.started_at)

    def duplicates(self) -> pl.Series:
        if not self.duplicate_rows:
            return pl.Series("_row", [], pl.UInt64)
        return pl.concat([s.cast(pl.UInt64) for s in self.duplicate_rows])


def parse_step(batch: LandedBatch, contract: Contract, outcome: Outcome) -> pl.DataFrame:
    """1. Typed valid rows; identical unreadable or unparseable records count as duplicates."""
    typed_parts: list[pl.DataFrame] = []
    bad_parts: list[pl.DataFrame] = []
    for i, f in enumerate(batch.files):
        raw = batch.raw(i)
        parsed = parse_batch(raw, contract, check_columns=contract.pii_columns)
        if parsed.failures.height:
            bad = raw.filter(parsed.failed).join(parsed.failures, on="_row")
            bad_parts.append(quarantine.records(bad, f["columns"], pl.col(CODES), pl.col(RULES)))
        typed_parts.append(parsed.typed.filter(~parsed.failed))
    if bad_parts:
        bad = pl.concat(bad_parts)
        first = bad.select(pl.struct("raw_values", "raw_line").is_first_distinct()).to_series()
        outcome.duplicate_rows.append(bad.filter(~first)["_row"])
        outcome.quarantine_parts.append(bad.filter(first))
    typed = (
        pl.concat(typed_parts)
        if typed_parts
        else pl.DataFrame(schema={**contract.polars_schema(), "_row": pl.UInt32})
    )
    return typed.with_columns(
        pl.Series("_file", file_of(typed["_row"], batch.offsets), dtype=pl.Int32)
    )


def dedupe_step(
    typed: pl.DataFrame, batch: LandedBatch, contract: Contract, outcome: Outcome
) -> pl.DataFrame:
    """2. One row per order: exact copies counted, conflicting copies quarantined."""
    dd = deduplicate(typed, contract.column_names)
    outcome.duplicate_rows.append(dd.duplicates["_row"].cast(pl.UInt64))
    if dd.conflicts.height:
        raw = batch.rows(dd.conflicts["_row"])
        columns = [c for c in contract.column_names if c in raw.columns]
        outcome.quarantine_parts.append(
            quarantine.records(
                raw, columns, pl.lit(["DUPLICATE_CONFLICT"]), pl.lit(["order_id.unique"])
            )
        )
    return dd.kept


def expectations_step(
    ctx: RunContext, contract: Contract, candidates: pl.DataFrame, outcome: Outcome
) -> tuple[RowFailures, dict[str, Any]]:
    """3. The generated suite: rows failing `quarantine` rules, and a summary for the manifest."""
    if not candidates.height:
        return {}, {"success": True, "expectations": 0, "skipped": "no rows to validate"}
    from pipelines.validate.gx.runner import ROW_KEY, run_suite
    from pipelines.validate.gx.suite import SuiteInputs, build_suite, gx_rules

    gx_columns = [c for c in contract.column_names if c not in contract.pii_columns]
    bounds = trailing_row_bounds(ctx, contract)
    report = run_suite(
        candidates.select(*gx_columns, pl.col("_row").cast(pl.Int64).alias(ROW_KEY)),
        lambda: build_suite(contract, SuiteInputs(now=ctx.started_at, row_count_bounds=bounds)),
        ctx.warehouse / layout.DOCS,
        run_name=ctx.run_id,
        slice_rows=ctx.config.resources.validation_slice_rows,
    )
    rejected: list[str] = []
    failures: RowFailures = {}
    for result in report.outcomes:
        if result.success:
            continue
        if result.severity == "warn":
            outcome.warnings.append(result.describe())
        elif result.severity == "quarantine" and result.unexpected_rows:
            for row in result.unexpected_rows:
                codes, rules = failures.setdefault(row, ([], []))
                codes.append(result.reason_code or "CONTRACT_VIOLATION")
                rules.append(result.rule)
        else:
            rejected.append(result.describe())
    if rejected:
        raise BatchRejected(
            "; ".join(rejected)
            + f" -- nothing published; see {report.docs_page or report.docs_index}"
        )
    summary = {
        "success": report.success,
        "expectations": len(report.outcomes),
        "rules_checked": [r.name for r in gx_rules(contract)],
        "docs_index": report.docs_index,
        "docs_page": report.docs_page,
        "row_count_bounds": list(bounds) if bounds else None,
        "slices": report.slices,  # GX saw the batch in this many row slices, merged here
    }
    return failures, summary


def reference_step(candidates: pl.DataFrame, rates: pl.DataFrame, failures: RowFailures) -> None:
    """4. Orders in a currency without an FX rate (an invalid code is already quarantined as such)."""
    for row in candidates.filter(~pl.col("currency").is_in(rates["currency"]))["_row"].to_list():
        failures.setdefault(int(row), (["NO_FX_RATE"], ["currency.fx_rate"]))


def quarantine_failures(
    candidates: pl.DataFrame,
    failures: RowFailures,
    batch: LandedBatch,
    contract: Contract,
    outcome: Outcome,
) -> pl.DataFrame:
    """The candidates that failed a row rule go to the quarantine; the rest are accepted."""
    if not failures:
        return candidates
    failed = pl.Series("_row", sorted(failures), dtype=pl.UInt64)
    raw = batch.rows(failed).with_columns(pl.col("_row").cast(pl.UInt64))
    codes = pl.DataFrame(
        {
            "_row": failed,
            CODES: [failures[r][0] for r in failed.to_list()],
            RULES: [failures[r][1] for r in failed.to_list()],
        }
    )
    columns = [c for c in contract.column_names if c in raw.columns]
    outcome.quarantine_parts.append(
        quarantine.records(raw.join(codes, on="_row"), columns, pl.col(CODES), pl.col(RULES))
    )
    return candidates.filter(~pl.col("_row").cast(pl.UInt64).is_in(failed))
