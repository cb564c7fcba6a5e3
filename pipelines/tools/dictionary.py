"""The data dictionary (`docs/data_dictionary.md`), generated from the contracts.

Run `custval docs` after changing a contract; a test fails when the committed file is stale.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.contracts import Contract, Rule, all_contracts
from pipelines.validate.quarantine import REASON_CODES
from pipelines.validate.rules import CONFIG_DRIVEN

LOCATIONS = {
    "orders": "source files or table → landed unchanged in `DIR/raw/orders/snapshot_date=D/`",
    "fx_rates": "a CSV or Parquet file named by the config key `fx_rates`",
    "marketing_spend": "a CSV or Parquet file named by the config key `marketing_spend`",
    "quarantine_orders": "`DIR/quarantine/orders/snapshot_date=D/` (restricted: raw source values)",
}
OPERATIONAL = ("quarantine_orders",)


def _rule_text(rule: Rule, with_severity: bool) -> str:
    p = rule.params
    kind = rule.kind
    if kind == "required":
        text = "required"
    elif kind == "unique":
        text = "unique"
    elif kind in ("minimum", "maximum"):
        text = f"{'≥' if kind == 'minimum' else '≤'} {p['value']:,}"
    elif kind == "pattern":
        text = f"matches `{p['value']}`"
    elif kind == "max_length":
        text = f"at most {p['value']} characters"
    elif kind == "accepted_values":
        values = p["values"]
        text = (
            f"one of {', '.join(f'`{v}`' for v in values)}"
            if len(values) <= 8
            else f"one of {len(values)} accepted values (`{rule.name}`)"
        )
    elif kind == "not_in_future":
        text = f"not later than the run's clock + {p.get('skewMinutes', 0)} min"
    else:
        text = rule.description or kind
    if not with_severity:
        return text
    code = f", {rule.reason_code}" if rule.reason_code else ""
    return f"{text} ({rule.severity}{code})"


def _mart_rule_text(rule: Rule) -> str:
    """A published table's rule: checked before publish; the config key when it decides the value."""
    text = _rule_text(rule, False)
    key = CONFIG_DRIVEN.get((rule.column or "", rule.kind))
    if key is not None:
        text += f", the default of config `{key}`"
    return text + (" (warn)" if rule.severity == "warn" else "")


def _column_rows(contract: Contract, published: bool = False) -> list[str]:
    rows = ["| column | type | required | description | rules |", "| --- | --- | --- | --- | --- |"]
    for col in contract.columns:
        # Severities and reason codes only mean something for the validated input; a published
        # table's rules stop the run unless they are warnings.
        rules = [
            _mart_rule_text(r) if published else _rule_text(r, contract.name == "orders")
            for r in col.rules
            if r.kind != "required"
        ]
        if col.pii:
            rules.insert(0, "**PII**: never published in clear")
        desc = col.description.replace("|", "\\|")
        rule_text = "; ".join(rules).replace("|", "\\|")
        required = "yes" if col.required else ""
        rows.append(f"| `{col.name}` | {col.physical_type} | {required} | {desc} | {rule_text} |")
    return rows


def render(contracts: dict[str, Contract] | None = None) -> str:
    from pipelines.transform.marts import load_models

    contracts = contracts or all_contracts()
    marts = {m.published_name for m in load_models().values() if m.published_name}
    published = [c for c in contracts.values() if c.name in marts]
    operational = [c for c in contracts.values() if c.name in OPERATIONAL]
    inputs = sorted(
        (c for c in contracts.values() if c.name not in marts and c.name not in OPERATIONAL),
        key=lambda c: (c.name != "orders", c.name),
    )
    out = [
        "# Data dictionary",
        "",
        "Generated from `data_contracts/*.yaml` by `custval docs` — do not edit by hand.",
        "Published tables live in `DIR/marts/<table>/snapshot_date=YYYY-MM-DD/` (hive-partitioned Parquet);",
        "each column's description is also in the Parquet field metadata.",
        "Types are DuckDB's; money is exact: `DECIMAL(18,2)` for amounts, `DECIMAL(18,4)` for money",
        "per order or per customer (averages, CAC), rounded half away from zero when published.",
        "`snapshot_date` is not a column of the files but the partition key: see the README for the",
        "type each reader gives it.",
        "Every published table is checked against the rules below (and its key) before a snapshot is",
        "published: a failed rule stops the run and nothing is published; a `(warn)` rule is a warning.",
        "",
    ]
    for title, group in (
        ("Inputs", inputs),
        ("Published tables", published),
        ("Operational", operational),
    ):
        if not group:
            continue
        out += [f"## {title}", ""]
        for c in group:
            location = LOCATIONS.get(c.name, f"`DIR/marts/{c.name}/snapshot_date=D/`")
            out += [
                f"### `{c.name}`",
                "",
                c.description,
                "",
                f"- Grain: {c.grain}",
                f"- Where: {location}",
                f"- Contract: `data_contracts/{c.name}.yaml` (version {c.version})",
                "",
                *_column_rows(c, published=c.name in marts),
                "",
            ]
            if c.batch_rules:
                out += ["Batch rules:", ""]
                for r in c.batch_rules:
                    params = ", ".join(f"{k}={v}" for k, v in r.params.items())
                    out.append(
                        f"- `{r.name}` ({r.severity}; {params}): {' '.join(r.description.split())}"
                    )
                out.append("")
    out += ["## Quarantine reason codes", "", "| code | meaning |", "| --- | --- |"]
    out += [f"| `{code}` | {text} |" for code, text in REASON_CODES.items()]
    return "\n".join(out) + "\n"


def write(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
