"""Great Expectations suites for the published tables, generated from their contracts.

A mart's suite checks what its contract says about the values, never written by hand:

- its key: every primary-key column the contract marks `required` is not null, and the key is
  unique -- one column through its `unique` rule, a compound key with
  `expect_compound_columns_to_be_unique` (the rule `<table>.primary_key`);
- its value rules: `logicalTypeOptions` minimum / maximum / pattern and `invalidValues` sets,
  mapped to expectations as for the input (`suite.expectation_for`), with the run's config
  values where the config decides them (`validate/rules.py`: `mart_contract_for_run`);
- its `rowCount` rules (a one-row-per-snapshot summary has exactly one row).

`required` on the other columns is not repeated here: conforming a table to its contract
(`publish/tables.py`) has already refused nulls there, from Arrow's null counts, before the
file was written. Severity: a rule declared `warn` is reported as a warning; any other stops
the run before anything is published (a mart has no rows to quarantine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.contracts import Contract, Rule

if TYPE_CHECKING:  # Great Expectations takes seconds to import; only when validating.
    import great_expectations as gx

VALUE_KINDS = ("minimum", "maximum", "pattern", "accepted_values")
_LIMIT = {"minimum": "min_value", "maximum": "max_value"}


def severity(rule: Rule) -> str:
    """warn, or reject: how a failed mart rule counts."""
    return "warn" if rule.severity == "warn" else "reject"


def mart_rules(contract: Contract) -> list[Rule]:
    """The contract's rules a mart suite checks, in suite order (key first)."""
    key = contract.primary_key
    rules: list[Rule] = []
    for name in key:
        column = contract.column(name)
        required = column.rule("required")
        if required is not None:
            rules.append(required)
    if len(key) == 1:
        unique = contract.column(key[0]).rule("unique")
        rules.append(
            unique
            or Rule(
                f"{key[0]}.unique", "unique", "reject", key[0], None, {}, f"one row per {key[0]}"
            )
        )
    elif key:
        rules.append(
            Rule(
                f"{contract.name}.primary_key",
                "compound_unique",
                "reject",
                None,
                None,
                {"columns": key},
                f"one row per {', '.join(key)}",
            )
        )
    for column in contract.columns:
        for rule in column.rules:
            if rule.kind in VALUE_KINDS or (rule.kind == "unique" and rule not in rules):
                rules.append(rule)
    rules += [r for r in contract.batch_rules if r.kind == "row_count"]
    return rules


def suite_columns(contract: Contract) -> list[str]:
    """The columns a mart suite reads (in contract order): only those are loaded."""
    needed = set()
    for rule in mart_rules(contract):
        if rule.column is not None:
            needed.add(rule.column)
        needed.update(rule.params.get("columns", ()))
    return [c for c in contract.column_names if c in needed]


def _meta(rule: Rule) -> dict[str, Any]:
    return {"rule": rule.name, "severity": severity(rule), "reason_code": ""}


_ROW_COUNT_OPERATORS = {
    "mustBe": lambda rows, n: rows == n,
    "mustBeGreaterThan": lambda rows, n: rows > n,
    "mustBeGreaterOrEqualTo": lambda rows, n: rows >= n,
    "mustBeLessThan": lambda rows, n: rows < n,
    "mustBeLessOrEqualTo": lambda rows, n: rows <= n,
}


def row_count_holds(rule: Rule, rows: int) -> bool:
    """A rowCount rule decided without GX (a table validated slice by slice)."""
    op, n = rule.params.get("operator"), rule.params.get("threshold")
    if op not in _ROW_COUNT_OPERATORS or n is None:
        raise ValueError(f"rule {rule.name!r}: a rowCount rule needs mustBe... and a threshold")
    return bool(_ROW_COUNT_OPERATORS[op](rows, n))


def _row_count(rule: Rule) -> Any:
    import great_expectations.expectations as gxe

    op, n, meta = rule.params.get("operator"), rule.params.get("threshold"), _meta(rule)
    if op is None or n is None:
        raise ValueError(f"rule {rule.name!r}: a rowCount rule needs mustBe... and a threshold")
    if op == "mustBe":
        return gxe.ExpectTableRowCountToEqual(value=int(n), meta=meta)
    bounds = {
        "mustBeGreaterThan": {"min_value": n, "strict_min": True},
        "mustBeGreaterOrEqualTo": {"min_value": n},
        "mustBeLessThan": {"max_value": n, "strict_max": True},
        "mustBeLessOrEqualTo": {"max_value": n},
    }[op]
    return gxe.ExpectTableRowCountToBeBetween(**bounds, meta=meta)


WHOLE_TABLE = ("unique", "compound_unique", "row_count")  # rules a slice cannot decide


def build_mart_suite(
    contract: Contract, detailed: bool = True, slice_of_table: bool = False
) -> gx.ExpectationSuite:
    """The suite of one published table (`mart_rules`), each expectation naming its rule(s).

    `detailed=False` is the fast pass that only decides whether the table passes: a column's
    minimum and maximum share one expectation (GX's cost is per expectation, not per row).
    The detailed suite has one expectation per rule, to say which failed and how.
    `slice_of_table=True` leaves out the rules over the whole table (`WHOLE_TABLE`): the suite
    of one slice of a table too large to validate at once (`mart_checks.py`).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe

    from pipelines.validate.gx.suite import expectation_for

    suffix = ("" if detailed else "_fast") + ("_slice" if slice_of_table else "")
    suite = gx.ExpectationSuite(name=f"{contract.name}_mart_v{contract.version}{suffix}")
    bounds: dict[str, list[Rule]] = {}
    for rule in mart_rules(contract):
        if slice_of_table and rule.kind in WHOLE_TABLE:
            continue
        if rule.kind == "compound_unique":
            exp = gxe.ExpectCompoundColumnsToBeUnique(
                column_list=list(rule.params["columns"]), meta=_meta(rule)
            )
        elif rule.kind == "row_count":
            exp = _row_count(rule)
        elif rule.kind in ("minimum", "maximum") and not detailed and rule.column is not None:
            bounds.setdefault(rule.column, []).append(rule)
            continue
        else:
            exp = expectation_for(rule)
            exp.meta = _meta(rule)
        suite.add_expectation(exp)
    for column, rules in bounds.items():
        limits = {_LIMIT[r.kind]: r.params["value"] for r in rules}
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, **limits, meta={"rule": ", ".join(r.name for r in rules)}
            )
        )
    return suite
