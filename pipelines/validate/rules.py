"""Contracts as a run applies them: the config's overrides of thresholds, sets and severities.

The contract file holds the defaults; a data engineer changes a threshold or a rule's
severity in the config (`validation.*`), never by editing the bundled contract. A published
table's rules whose value the config decides (the score bins, the segment map, the loyalty
tiers) get the run's value the same way (`mart_contract_for_run`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pipelines.config import Config, ConfigError
from pipelines.contracts import Contract, load_contract

# Published tables' rules whose value comes from the config, by column and rule kind, wherever
# a mart contract declares them: the contract states the default configuration's value (so the
# data dictionary shows it) and each run checks against its own configuration's.
CONFIG_DRIVEN: dict[tuple[str, str], str] = {
    ("r_score", "maximum"): "rfm.bins",
    ("f_score", "maximum"): "rfm.bins",
    ("m_score", "maximum"): "rfm.bins",
    ("rfm_segment", "accepted_values"): "rfm.segments",
    ("previous_segment", "accepted_values"): "rfm.segments",
    ("loyalty_tier", "accepted_values"): "loyalty.tiers",
}


def config_value(key: str, config: Config) -> dict[str, Any]:
    """The rule parameters a CONFIG_DRIVEN key gives under `config`."""
    if key == "rfm.bins":
        return {"value": config.rfm.bins}
    if key == "rfm.segments":  # in the map's order, each segment once
        return {"values": list(dict.fromkeys(s.segment for s in config.rfm.segments))}
    if key == "loyalty.tiers":
        return {"values": [t.tier for t in config.loyalty.tiers]}
    raise KeyError(f"no config value {key!r} for a contract rule")


def mart_contract_for_run(name: str, config: Config, directory: Path | None = None) -> Contract:
    """A published table's contract with the config's values of its config-driven rules."""
    contract = load_contract(name, directory)
    for rule in contract.row_rules:
        key = CONFIG_DRIVEN.get((rule.column or "", rule.kind))
        if key is not None:
            contract = contract.with_rule_params(rule.name, **config_value(key, config))
    return contract


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
