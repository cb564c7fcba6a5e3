"""Great Expectations suites generated from a data contract, never written by hand.

Every contract rule that Great Expectations can evaluate on a typed batch becomes one
expectation whose `meta` names the rule, its severity and its reason code, so a failed
expectation maps straight back to the contract. Parse-level rules (a value that is not a
number at all) are enforced before GX sees the batch; PII columns are not sent to GX at all,
so their values can never appear in a validation report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.contracts import Contract, Rule

if TYPE_CHECKING:  # Great Expectations takes seconds to import; only when validating.
    import great_expectations as gx


@dataclass(frozen=True)
class SuiteInputs:
    """Run-dependent values some rules need."""

    now: datetime
    row_count_bounds: tuple[int, int] | None = None  # from the trailing average of earlier runs


def gx_rules(contract: Contract) -> list[Rule]:
    """Contract rules that become expectations (everything but parse-level and PII checks)."""
    skip_columns = set(contract.pii_columns)
    return [r for r in contract.row_rules if r.column not in skip_columns]


def _meta(rule: Rule) -> dict[str, Any]:
    return {"rule": rule.name, "severity": rule.severity, "reason_code": rule.reason_code or ""}


def expectation_for(rule: Rule, inputs: SuiteInputs | None = None) -> Any:
    """The one expectation that checks a column rule (the same for the input and the marts);
    the clock-dependent kinds need `inputs`."""
    import great_expectations.expectations as gxe
    import pandas as pd

    col, meta, p = rule.column, _meta(rule), rule.params
    if col is None:
        raise ValueError(f"rule {rule.name!r} is not a column rule")
    if rule.kind == "required":
        return gxe.ExpectColumnValuesToNotBeNull(column=col, meta=meta)
    if rule.kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=col, meta=meta)
    if rule.kind == "minimum":
        return gxe.ExpectColumnValuesToBeBetween(column=col, min_value=p["value"], meta=meta)
    if rule.kind == "maximum":
        return gxe.ExpectColumnValuesToBeBetween(column=col, max_value=p["value"], meta=meta)
    if rule.kind == "pattern":
        return gxe.ExpectColumnValuesToMatchRegex(column=col, regex=p["value"], meta=meta)
    if rule.kind == "max_length":
        return gxe.ExpectColumnValueLengthsToBeBetween(column=col, max_value=p["value"], meta=meta)
    if rule.kind == "accepted_values":
        return gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(p["values"]), meta=meta)
    if rule.kind == "not_in_future":
        if inputs is None:
            raise ValueError(f"rule {rule.name!r} needs the run's clock")
        limit = inputs.now + timedelta(minutes=float(p.get("skewMinutes", 0)))
        return gxe.ExpectColumnValuesToBeBetween(
            column=col, max_value=pd.Timestamp(limit).tz_convert("UTC"), meta=meta
        )
    if rule.kind == "not_before":
        earliest = pd.Timestamp(str(p["earliest"]), tz="UTC")
        return gxe.ExpectColumnValuesToBeBetween(column=col, min_value=earliest, meta=meta)
    raise ValueError(f"rule {rule.name!r}: no expectation for kind {rule.kind!r}")


def build_suite(contract: Contract, inputs: SuiteInputs) -> gx.ExpectationSuite:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{contract.name}_contract_v{contract.version}")
    for column in contract.required_columns:
        suite.add_expectation(
            gxe.ExpectColumnToExist(
                column=column,
                meta={"rule": f"{column}.present", "severity": "reject", "reason_code": ""},
            )
        )
    for rule in gx_rules(contract):
        suite.add_expectation(expectation_for(rule, inputs))

    # The batch_not_empty rule counts rows read (before quarantine), so validate.py checks it.
    trend = contract.batch_rule("row_count_vs_trailing_average")
    if trend is not None and inputs.row_count_bounds is not None:
        low, high = inputs.row_count_bounds
        suite.add_expectation(
            gxe.ExpectTableRowCountToBeBetween(min_value=low, max_value=high, meta=_meta(trend))
        )
    return suite
