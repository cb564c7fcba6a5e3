"""The orders contract as a run applies it: the config's overrides of thresholds and severities.

The contract file holds the defaults; a data engineer changes a threshold or a rule's
severity in the config (`validation.*`), never by editing the bundled contract.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipelines.config import Config, ConfigError
from pipelines.contracts import Contract, load_contract


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
