"""Validate the built marts against their contracts, before anything is published.

The marts stage conforms every table to its contract and writes it into the run's work dir;
each file is then checked with the suite its contract generates (`gx/mart_suite.py`, with the
run's config values: `rules.mart_contract_for_run`), reading only the columns the suite needs
from the file itself, every table in one in-memory GX context. A fast pass decides whether a
table passes; only a failing table is validated again, rule by rule, to say what is wrong.

A failed rule stops the run with one line naming the table, the rule, the column and a count
and sample of the bad values: publish never starts, so readers keep the snapshot published
before. A rule declared `warn` becomes a manifest warning instead. The outcome per table
(rules checked, passed, failed) goes to the marts stage's result and the manifest
(`mart_validation`), not to Data Docs: its index re-reads every stored result at each build,
and eleven more a run would make every later build slower.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import Config
from pipelines.contracts import Contract, Rule
from pipelines.errors import MartRejected
from pipelines.storage import layout
from pipelines.validate.gx.mart_suite import (
    WHOLE_TABLE,
    build_mart_suite,
    mart_rules,
    row_count_holds,
    severity,
    suite_columns,
)
from pipelines.validate.rules import mart_contract_for_run

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# Opens the DuckDB connection the whole-table rules run on: the run's, held to its memory budget
# and spilling to its work dir; by default an unbounded in-memory one.
Engine = Callable[[], "duckdb.DuckDBPyConnection"]

MAX_LISTED = 3  # failed rules named in the error line; the rest are counted
PARTIAL = 20  # values of a failed rule kept as its sample (GX's partial_unexpected_count)


def load_for_suite(path: Path, contract: Contract) -> Any:
    """The columns the table's suite reads, from its Parquet file, as a pandas frame."""
    return _as_pandas(pq.read_table(path, columns=suite_columns(contract)))


def _as_pandas(table: pa.Table) -> Any:
    """DECIMAL columns become doubles: the rules compare numbers with bounds, and pandas would
    hold them as Python Decimal objects."""
    columns = [
        col.cast(pa.float64()) if pa.types.is_decimal(col.type) else col for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names).to_pandas()


def _value(v: Any) -> str:
    if isinstance(v, dict):  # a compound key
        return "(" + ", ".join(_value(x) for x in v.values()) + ")"
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "null"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, date):
        return v.isoformat()
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe(table: str, outcome: Any) -> str:
    """One failed rule of one table, in one line."""
    if outcome.column is None:  # a table-level rule: the row count
        return (
            f"table {table}: rule {outcome.rule} ({outcome.expectation}) failed: "
            f"{outcome.observed} rows"
        )
    sample = ", ".join(_value(v) for v in outcome.sample[:MAX_LISTED])
    return (
        f"table {table}: rule {outcome.rule} ({outcome.expectation} on {outcome.column}) failed "
        f"for {outcome.unexpected_count:,} of {outcome.element_count:,} rows (e.g. {sample})"
    )


def check_tables(
    files: dict[str, Path],
    contracts: dict[str, Contract],
    slice_rows: int | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Validate each built table file against its contract's suite; the summary of all.

    A table of more than `slice_rows` rows is validated slice by slice (`_sliced_outcomes`).
    Raises MartRejected naming the failed rules that are not `warn` -- after every table is
    checked, so one error line says everything that is wrong.
    """
    from pipelines.validate.gx.runner import SuiteSession

    started = time.perf_counter()
    session = SuiteSession()
    tables: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    warnings: list[str] = []
    for name in sorted(files):
        contract = contracts[name]
        rules = len(mart_rules(contract))
        failed: list[str] = []
        if rules:
            rows = pq.ParquetFile(files[name]).metadata.num_rows
            if slice_rows is not None and rows > slice_rows:
                outcomes = _sliced_outcomes(session, files[name], contract, slice_rows, engine)
            else:
                frame = load_for_suite(files[name], contract)
                fast = session.validate(
                    frame, build_mart_suite(contract, detailed=False), "BOOLEAN_ONLY"
                )
                outcomes = (
                    []
                    if fast.success
                    else session.validate(frame, build_mart_suite(contract), "BASIC").outcomes
                )
            for outcome in outcomes:
                if outcome.success:
                    continue
                failed.append(outcome.rule)
                line = describe(name, outcome)
                (warnings if outcome.severity == "warn" else errors).append(line)
        tables[name] = {"rules": rules, "passed": rules - len(failed), "failed": failed}
    seconds = round(time.perf_counter() - started, 3)
    if errors:
        more = f"; and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise MartRejected(
            f"{'; '.join(errors[:MAX_LISTED])}{more} -- nothing published; the snapshot keeps "
            "what was published before"
        )
    log.info("published tables checked against their contracts in %.2f s", seconds)
    return {
        "success": True,
        "seconds": seconds,
        "rules": sum(t["rules"] for t in tables.values()),
        "passed": sum(t["passed"] for t in tables.values()),
        "tables": tables,
        "warnings": warnings,
    }


def check_marts(
    config: Config, built: Path, tables: list[str], spill_dir: Path | None = None
) -> dict[str, Any]:
    """The marts stage's check: every table written under `built` against its contract.

    The whole-table rules of a large table run in DuckDB held to the run's budget, spilling to
    `spill_dir`: at 100M orders the customer tables have 31M keys.
    """
    from pipelines.engines import connect

    return check_tables(
        {name: built / name / layout.TABLE_FILE for name in tables},
        {name: mart_contract_for_run(name, config) for name in tables},
        config.resources.validation_slice_rows,
        lambda: connect(config.resources, spill_dir),
    )


def _slices(path: Path, contract: Contract, rows: int) -> Iterator[Any]:
    """The suite's columns of a table file, `rows` at a time, as pandas frames."""
    for batch in pq.ParquetFile(path).iter_batches(
        batch_size=rows, columns=suite_columns(contract)
    ):
        yield _as_pandas(pa.Table.from_batches([batch]))


def _sliced_outcomes(
    session: Any, path: Path, contract: Contract, rows: int, engine: Engine | None = None
) -> list[Any]:
    """A large table's outcome per rule: GX slice by slice, the whole-table rules in DuckDB.

    GX holds one slice at a time. Value rules are decided per slice: a rule fails when it
    fails in some slice, its counts summed and its sample the failing values in row order
    across slices (up to GX's partial count), as one validation of the whole table gives. The rules
    over the whole table (key uniqueness, row count) cannot be decided per slice; DuckDB
    answers them over the whole file.
    """
    fast = session.validator(
        build_mart_suite(contract, detailed=False, slice_of_table=True), "BOOLEAN_ONLY"
    )
    detailed = None
    merged: dict[str, Any] = {}
    total = 0
    for frame in _slices(path, contract, rows):
        total += len(frame)
        if fast(frame).success:
            continue
        if detailed is None:
            detailed = session.validator(build_mart_suite(contract, slice_of_table=True), "BASIC")
        for outcome in detailed(frame).outcomes:
            seen = merged.get(outcome.rule)
            if seen is None or (seen.success and not outcome.success):
                merged[outcome.rule] = outcome
            elif not outcome.success:
                seen.unexpected_count += outcome.unexpected_count
                seen.sample = [*seen.sample, *outcome.sample][:PARTIAL]
    for outcome in merged.values():
        outcome.element_count = total
    whole = [r for r in mart_rules(contract) if r.kind in WHOLE_TABLE]
    return [*merged.values(), *(_whole_table_outcome(path, rule, total, engine) for rule in whole)]


def _whole_table_outcome(path: Path, rule: Rule, rows: int, engine: Engine | None = None) -> Any:
    """A key-uniqueness or row-count rule over a whole table file, decided by DuckDB."""
    import duckdb

    from pipelines.engines import scan_parquet
    from pipelines.validate.gx.runner import RuleOutcome

    if rule.kind == "row_count":
        return RuleOutcome(
            rule=rule.name,
            severity=severity(rule),
            reason_code="",
            expectation="expect_table_row_count",
            success=row_count_holds(rule, rows),
            observed=rows,
        )
    columns = list(rule.params.get("columns") or [rule.column])
    keys = ", ".join(f'"{c}"' for c in columns)
    present = " and ".join(f'"{c}" is not null' for c in columns)
    con = engine() if engine is not None else duckdb.connect()
    try:
        con.execute("set preserve_insertion_order = true")  # the sample in row order, as GX's
        scan_parquet(con, "whole_table", [path])
        con.execute(
            f"create temp table repeated_rows as select {keys} from whole_table "
            f"where ({keys}) in (select ({keys}) from whole_table where {present} "
            f"group by {keys} having count(*) > 1)"
        )
        count = int(con.sql("select count(*) from repeated_rows").fetchall()[0][0])
        first = con.sql(f"select * from repeated_rows limit {PARTIAL}").fetchall()
    finally:
        con.close()
    sample = [dict(zip(columns, row)) if len(columns) > 1 else row[0] for row in first]
    return RuleOutcome(
        rule=rule.name,
        severity=severity(rule),
        reason_code="",
        expectation=(
            "expect_compound_columns_to_be_unique"
            if len(columns) > 1
            else "expect_column_values_to_be_unique"
        ),
        success=count == 0,
        column="+".join(columns),
        unexpected_count=count,
        element_count=rows,
        sample=sample,
    )
