"""Validate: decide, for every landed row, accepted / quarantined / exact duplicate.

The steps (`steps.py`) parse, deduplicate, run the contract's Great Expectations suite and
check the reference data, each adding to one outcome; the gates (`gates.py`) judge the batch
as a whole and reconcile its counts; `accepted.py` writes the result where it belongs. Nothing
is published here.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import duckdb

from pipelines.context import RunContext
from pipelines.engines import connect
from pipelines.errors import BatchRejected
from pipelines.validate import accepted as batches
from pipelines.validate import gates, steps
from pipelines.validate.batch import LandedBatch
from pipelines.validate.reference_data import fx_rates
from pipelines.validate.rules import contract_for_run


def run(ctx: RunContext) -> dict[str, Any]:
    contract = contract_for_run(ctx.config)
    rates = fx_rates(
        ctx.config.fx_rates, ctx.config.reporting_currency
    )  # a bad FX file fails first
    extract = ctx.load_result("extract")
    if not extract.get("arrived", True):  # a landing day whose folder has not arrived: a gap
        return ctx.save_result("validate", batches.nothing_arrived())
    batch = LandedBatch.from_extract(extract, ctx.config.resources.validation_slice_rows)
    incremental = ctx.source_spec.incremental
    note = gates.empty_batch_gate(contract, batch.rows_in, batch.files, incremental, ctx.config)

    outcome = steps.Outcome()

    def engine() -> closing[duckdb.DuckDBPyConnection]:
        # One connection per step, closed after it: a DuckDB that has answered a question over
        # the whole batch keeps memory allocated after it, which the next step (Great
        # Expectations' slices) would hold beside its own.
        return closing(connect(ctx.config.resources, ctx.work_dir / "spill"))

    typed = steps.parse_step(batch, contract, outcome, ctx.work_dir / "typed")
    with engine() as con:
        candidates = steps.dedupe_step(typed, batch, contract, outcome, con)
    with engine() as con:
        failures, gx_summary = steps.expectations_step(ctx, contract, candidates, outcome, con)
    steps.reference_step(candidates, rates, failures)
    accepted = steps.quarantine_failures(candidates, failures, batch, contract, outcome)
    with engine() as con:
        accepted_per_file = batches.rows_per_file(con, accepted, len(batch.files))
    q = outcome.quarantine(ctx)

    counts = gates.reconcile(
        batch.files,
        accepted_per_file,
        gates.rows_per_file(q["_row"], batch.offsets),
        gates.rows_per_file(outcome.duplicates(), batch.offsets),
    )
    lines = gates.lines_of(batch.files, int(q["_lines"].sum() or 0))
    too_many = gates.quarantined_share_gate(
        contract, lines["lines_in"], lines["lines_quarantined"], counts["total"]
    )
    if too_many is not None:
        if contract.batch_rule("quarantined_share").severity == "reject":  # type: ignore[union-attr]
            kept = batches.keep_rejected(ctx, q, too_many, extract, incremental)
            raise BatchRejected(
                f"{too_many} -- nothing published; the batch and its quarantine are kept in {kept}"
            )
        outcome.warnings.append(too_many)
    if note:
        outcome.warnings.append(note)
    result = {
        "counts": counts["total"],
        "lines": lines,
        "per_file": counts["per_file"],
        "quarantine_reasons": batches.reason_counts(q),
        "warnings": outcome.warnings,
        "quiet_day": bool(note and incremental),
        "gx": gx_summary,
    }
    return ctx.save_result("validate", batches.write_batch(ctx, accepted, q, extract, result))
