"""The row-level steps of validation, in order, each adding to one `Outcome`.

1. parse: every value strictly against the contract (`parse.py`); unreadable records and
   values that do not parse are quarantined with their reason codes;
2. dedupe: exact copies collapse and are counted; conflicting copies are quarantined (`dedupe.py`);
3. expectations: the contract's Great Expectations suite (`gx/`): `quarantine` rules
   quarantine the failing rows, `reject` rules stop the run, `warn` rules are recorded;
4. reference data: money must convert into the reporting currency (`reference_data.py`).

No step holds the whole batch: parse reads the landed files in chunks of
`resources.validation_slice_rows` rows and writes the typed rows to disk (`typed_parts.py`);
the later steps read them back part by part, and ask DuckDB (within the run's memory budget)
the questions that need every row at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines.context import RunContext
from pipelines.contracts import Contract
from pipelines.errors import BatchRejected
from pipelines.storage import layout
from pipelines.storage.files import fresh_dir
from pipelines.validate import quarantine
from pipelines.validate.batch import LandedBatch
from pipelines.validate.dedupe import KEY, deduplicate
from pipelines.validate.gates import trailing_row_bounds
from pipelines.validate.parse import CODES, RULES, parse_batch
from pipelines.validate.typed_parts import TypedParts

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


def parse_step(
    batch: LandedBatch, contract: Contract, outcome: Outcome, typed_dir: Path
) -> TypedParts:
    """1. Typed valid rows, written chunk by chunk to `typed_dir`; identical unreadable or
    unparseable records count as duplicates."""
    fresh_dir(typed_dir)
    paths: list[Path] = []
    bad_parts: list[pl.DataFrame] = []
    for i, f in enumerate(batch.files):
        for raw in batch.file_chunks(i, batch.chunk_rows):
            parsed = parse_batch(raw, contract, check_columns=contract.pii_columns)
            if parsed.failures.height:
                bad = raw.filter(parsed.failed).join(parsed.failures, on="_row")
                bad_parts.append(
                    quarantine.records(bad, f["columns"], pl.col(CODES), pl.col(RULES))
                )
            path = typed_dir / f"part-{len(paths):05d}.parquet"
            parsed.typed.filter(~parsed.failed).with_columns(
                pl.lit(i, pl.Int32).alias("_file")
            ).write_parquet(path, compression="lz4", statistics=False)
            paths.append(path)
    if not paths:  # no file (a quiet day): one empty part, so every step sees the columns
        path = typed_dir / "part-00000.parquet"
        pl.DataFrame(
            schema={**contract.polars_schema(), "_row": pl.UInt32, "_file": pl.Int32}
        ).write_parquet(path)
        paths.append(path)
    if bad_parts:
        bad = pl.concat(bad_parts)
        first = bad.select(pl.struct("raw_values", "raw_line").is_first_distinct()).to_series()
        outcome.duplicate_rows.append(bad.filter(~first)["_row"])
        outcome.quarantine_parts.append(bad.filter(first))
    return TypedParts(paths)


def dedupe_step(
    parts: TypedParts,
    batch: LandedBatch,
    contract: Contract,
    outcome: Outcome,
    con: duckdb.DuckDBPyConnection,
) -> TypedParts:
    """2. One row per order: exact copies counted, conflicting copies quarantined.

    Which order ids repeat is asked of DuckDB over every part (within the memory budget);
    only the rows of those ids -- usually a handful -- are read and compared in full.
    """
    parts.relation(con, "typed")
    repeated = con.sql(f"select {KEY} from typed group by {KEY} having count(*) > 1").pl()[KEY]
    if repeated.len() == 0:
        return parts
    wanted = repeated.implode()
    contested = pl.concat([f.filter(pl.col(KEY).is_in(wanted)) for f in parts.frames()])
    dd = deduplicate(contested, contract.column_names)
    outcome.duplicate_rows.append(dd.duplicates["_row"].cast(pl.UInt64))
    if dd.conflicts.height:
        raw = batch.rows(dd.conflicts["_row"])
        columns = [c for c in contract.column_names if c in raw.columns]
        outcome.quarantine_parts.append(
            quarantine.records(
                raw, columns, pl.lit(["DUPLICATE_CONFLICT"]), pl.lit(["order_id.unique"])
            )
        )
    return parts.without(pl.concat([dd.duplicates["_row"], dd.conflicts["_row"]]))


def expectations_step(
    ctx: RunContext,
    contract: Contract,
    candidates: TypedParts,
    outcome: Outcome,
    con: duckdb.DuckDBPyConnection,
) -> tuple[RowFailures, dict[str, Any]]:
    """3. The generated suite: rows failing `quarantine` rules, and a summary for the manifest.

    Great Expectations sees the candidates one slice at a time (at most
    `resources.validation_slice_rows` rows); the rules over the whole batch (row count,
    uniqueness) are answered by DuckDB over every part and merged into one result.
    """
    candidates.relation(con, "candidates")
    rows = int(con.sql("select count(*) from candidates").fetchall()[0][0])
    if not rows:
        return {}, {"success": True, "expectations": 0, "skipped": "no rows to validate"}
    from pipelines.validate.gx.runner import ROW_KEY, run_suite_slices
    from pipelines.validate.gx.slices import WholeBatch, rebatch
    from pipelines.validate.gx.suite import SuiteInputs, build_suite, gx_rules

    gx_columns = [c for c in contract.column_names if c not in contract.pii_columns]

    def duplicates(column: str) -> pl.DataFrame:
        rows = f'select _row::bigint as {ROW_KEY}, "{column}" from candidates'
        if column == KEY:
            # The dedupe step asked this of every row and left one row per order id (exact
            # copies dropped, conflicting ones quarantined): none repeats. Asking again cost a
            # second group-by of the whole batch.
            return con.sql(f"{rows} limit 0").pl()
        return con.sql(
            f"""
            {rows}
            where "{column}" in (
                select "{column}" from candidates where "{column}" is not null
                group by "{column}" having count(*) > 1
            )
            order by _row
            """
        ).pl()

    bounds = trailing_row_bounds(ctx, contract)
    slice_rows = ctx.config.resources.validation_slice_rows
    slices = (
        f.select(*gx_columns, pl.col("_row").cast(pl.Int64).alias(ROW_KEY))
        for f in rebatch(candidates.frames(gx_columns), slice_rows)
    )
    report = run_suite_slices(
        slices,
        lambda: build_suite(contract, SuiteInputs(now=ctx.started_at, row_count_bounds=bounds)),
        ctx.warehouse / layout.DOCS,
        ctx.run_id,
        WholeBatch(rows, duplicates),
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


def reference_step(candidates: TypedParts, rates: pl.DataFrame, failures: RowFailures) -> None:
    """4. Orders in a currency without an FX rate (an invalid code is already quarantined as such)."""
    for frame in candidates.frames(["currency"]):
        unknown = frame.filter(~pl.col("currency").is_in(rates["currency"].implode()))
        for row in unknown["_row"].to_list():
            failures.setdefault(int(row), (["NO_FX_RATE"], ["currency.fx_rate"]))


def quarantine_failures(
    candidates: TypedParts,
    failures: RowFailures,
    batch: LandedBatch,
    contract: Contract,
    outcome: Outcome,
) -> TypedParts:
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
    return candidates.without(failed)
