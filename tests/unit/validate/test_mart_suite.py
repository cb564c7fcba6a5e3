"""The published tables' suites come from their contracts: which expectations, with which values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import load_config
from pipelines.contracts import Contract, load_contract, load_contract_file
from pipelines.resources import sql_dir
from pipelines.validate.gx.mart_suite import build_mart_suite, mart_rules, suite_columns
from pipelines.validate.rules import CONFIG_DRIVEN, config_value, mart_contract_for_run

SEGMENTS = [
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "cannot_lose_them",
    "at_risk",
    "lost",
    "hibernating",
]


pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def _gx_context() -> None:
    """GX 1.x binds a suite to the active context: one in memory, as the marts check uses."""
    from pipelines.validate.gx.runner import _memory_context

    _memory_context()


def _expectations(
    contract: Contract, detailed: bool = True
) -> list[tuple[str, str, dict[str, Any]]]:
    """(rule, expectation type, the kwargs that matter) for each expectation of the suite."""
    out = []
    for exp in build_mart_suite(contract, detailed=detailed).expectations:
        kwargs = exp.configuration.kwargs
        shown = {
            k: kwargs[k]
            for k in (
                "column",
                "column_list",
                "min_value",
                "max_value",
                "value",
                "value_set",
                "regex",
            )
            if kwargs.get(k) is not None
        }
        out.append((exp.meta["rule"], exp.expectation_type, shown))
    return out


def _config(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path)


def test_customer_rfm_suite_checks_key_scores_and_sets() -> None:
    contract = mart_contract_for_run("customer_rfm", load_config(None))
    got = _expectations(contract)
    assert got[:2] == [  # the key first
        ("customer_id.required", "expect_column_values_to_not_be_null", {"column": "customer_id"}),
        ("customer_id.unique", "expect_column_values_to_be_unique", {"column": "customer_id"}),
    ]
    by_rule = {rule: (kind, kwargs) for rule, kind, kwargs in got}
    between = "expect_column_values_to_be_between"
    for score in ("r_score", "f_score", "m_score"):
        assert by_rule[f"{score}.minimum"] == (between, {"column": score, "min_value": 1})
        assert by_rule[f"{score}.maximum"] == (between, {"column": score, "max_value": 5})
    assert by_rule["recency_days.minimum"] == (between, {"column": "recency_days", "min_value": 0})
    assert by_rule["order_count.minimum"] == (between, {"column": "order_count", "min_value": 1})
    in_set = "expect_column_values_to_be_in_set"
    assert by_rule["rfm_segment_accepted"] == (
        in_set,
        {"column": "rfm_segment", "value_set": SEGMENTS},
    )
    assert by_rule["abc_class_accepted"] == (
        in_set,
        {"column": "abc_class", "value_set": ["A", "B", "C"]},
    )
    assert by_rule["loyalty_tier_accepted"][1]["value_set"] == [
        "Platinum",
        "Gold",
        "Silver",
        "Bronze",
    ]
    assert set(by_rule["lifecycle_stage_accepted"][1]["value_set"]) == {
        "new",
        "one_time",
        "repeat",
        "loyal",
        "at_risk",
        "lapsed",
        "reactivated",
    }
    assert by_rule["rfm_cell.pattern"] == (
        "expect_column_values_to_match_regex",
        {"column": "rfm_cell", "regex": "^[1-9]{3}$"},
    )
    # required non-key columns are left to conform(); descriptive columns are not read at all
    assert "first_order_date.required" not in by_rule
    assert "monetary_total" not in suite_columns(contract)
    assert suite_columns(contract)[0] == "customer_id"


def test_fast_suite_merges_a_columns_bounds_into_one_expectation() -> None:
    contract = load_contract("customer_clv")
    fast = _expectations(contract, detailed=False)
    p_alive = [e for e in fast if e[2].get("column") == "p_alive"]
    assert p_alive == [
        (
            "p_alive.minimum, p_alive.maximum",
            "expect_column_values_to_be_between",
            {"column": "p_alive", "min_value": 0, "max_value": 1},
        )
    ]
    detailed = _expectations(contract)
    assert len(detailed) == len(mart_rules(contract))
    two_sided = {r.column for r in mart_rules(contract) if r.kind == "maximum"}
    assert len(fast) == len(detailed) - len(two_sided)


def test_compound_keys_and_one_row_tables() -> None:
    cohort = _expectations(load_contract("cohort_retention"))
    assert (
        "cohort_retention.primary_key",
        "expect_compound_columns_to_be_unique",
        {"column_list": ["cohort_month", "months_since_first"]},
    ) in cohort
    assert (
        "cohort_month.required",
        "expect_column_values_to_not_be_null",
        {"column": "cohort_month"},
    ) in cohort
    fit = _expectations(load_contract("model_fit"))
    assert (
        "model_fit.primary_key",
        "expect_compound_columns_to_be_unique",
        {"column_list": ["fit", "model", "param", "status"]},
    ) in fit
    # a key column that may be null (a new customer has no previous segment) is not required
    transitions = _expectations(load_contract("segment_transition_summary"))
    assert not [e for e in transitions if e[1] == "expect_column_values_to_not_be_null"]
    for table in ("kpi_summary", "journey_summary"):
        assert (
            "one_row_per_snapshot",
            "expect_table_row_count_to_equal",
            {"value": 1},
        ) in _expectations(load_contract(table))


def test_shares_and_probabilities_are_between_0_and_1() -> None:
    expected = {
        "cohort_retention": ["retention_rate"],
        "customer_clv": ["retention_rate", "p_alive", "p_alive_90"],
        "kpi_summary": [
            "repeat_purchase_rate",
            "retention_rate",
            "churn_rate",
            "annual_retention_rate",
            "revenue_share_a",
            "revenue_share_b",
            "revenue_share_c",
        ],
        "journey_summary": [
            "repeat_conversion_rate",
            "high_value_conversion_rate",
            "first_order_loss_share",
            "cac_unpaid_share",
        ],
        "segment_summary": ["customer_share", "cac_unpaid_share"],
        "segment_transition_summary": ["customer_share"],
    }
    for table, columns in expected.items():
        contract = load_contract(table)
        for column in columns:
            col = contract.column(column)
            bounds = {
                r.kind: r.params["value"] for r in col.rules if r.kind in ("minimum", "maximum")
            }
            assert bounds == {"minimum": 0, "maximum": 1}, f"{table}.{column}"
    # a revenue share of a segment whose net revenue is negative (returns) is not a share of 0..1
    assert load_contract("segment_summary").column("revenue_share").rules == ()


def test_config_decides_bins_segments_and_tiers(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        """
rfm:
  bins: 3
  breakpoints: {f: [2, 4]}
  segments:
    - {segment: best, r: [3, 3], f: [2, 3]}
    - {segment: rest, r: [1, 3], f: [1, 3]}
loyalty:
  tiers:
    - {tier: VIP, min_spend: 500, min_orders: 5}
    - {tier: Member, min_spend: 0, min_orders: 0}
""",
    )
    rfm = {r: k for r, _, k in _expectations(mart_contract_for_run("customer_rfm", config))}
    assert rfm["r_score.maximum"]["max_value"] == 3
    assert rfm["m_score.minimum"]["min_value"] == 1
    assert rfm["rfm_segment_accepted"]["value_set"] == ["best", "rest"]
    assert rfm["loyalty_tier_accepted"]["value_set"] == ["VIP", "Member"]
    moves = {
        r: k for r, _, k in _expectations(mart_contract_for_run("segment_transitions", config))
    }
    assert moves["previous_segment_accepted"]["value_set"] == ["best", "rest"]
    assert moves["rfm_segment_accepted"]["value_set"] == ["best", "rest"]


def test_contracts_state_the_default_configs_values() -> None:
    """The dictionary shows the contract's values: they must be the default config's."""
    defaults = load_config(None)
    seen = set()
    for table in ("customer_rfm", "segment_transitions", "segment_transition_summary"):
        contract = load_contract(table)
        for rule in contract.row_rules:
            key = CONFIG_DRIVEN.get((rule.column or "", rule.kind))
            if key is None:
                continue
            seen.add(key)
            wanted = config_value(key, defaults)
            assert {k: rule.params[k] for k in wanted} == wanted, rule.name
    assert seen == set(CONFIG_DRIVEN.values())


@pytest.mark.parametrize(
    ("sql", "table", "columns"),
    [
        ("intermediate/int_customer_lifecycle_stage.sql", "customer_rfm", ["lifecycle_stage"]),
        ("intermediate/int_customer_abc_class.sql", "customer_rfm", ["abc_class"]),
        ("intermediate/int_customer_acquisition.sql", "customer_clv", ["ltv_cac_status"]),
        (
            "intermediate/int_customer_journey_stage.sql",
            "customer_journey",
            ["journey_stage", "activity_state"],
        ),
    ],
)
def test_accepted_sets_are_what_the_sql_produces(sql: str, table: str, columns: list[str]) -> None:
    """Every label a model's CASE yields is accepted (read from the SQL, not from the contract)."""
    text = (sql_dir() / sql).read_text()
    produced = set(re.findall(r"\b(?:then|else) '([A-Za-z_]+)'", text))
    accepted: set[str] = set()
    for column in columns:
        rule = load_contract(table).column(column).rule("accepted_values")
        assert rule is not None, column
        accepted |= set(rule.params["values"])
    assert produced == accepted


CUSTOM = """
apiVersion: v3.1.0
kind: DataContract
id: urn:custval:contract:tiny
name: tiny
version: 2.0.0
status: active
schema:
  - name: tiny
    physicalType: table
    description: A test table.
    dataGranularityDescription: one row per id
    properties:
      - name: id
        description: The key, not flagged unique.
        logicalType: string
        physicalType: VARCHAR
        required: true
        primaryKey: true
      - name: share
        description: A share that may drift a little.
        logicalType: number
        physicalType: DOUBLE
        customProperties:
          - property: severity
            value: warn
        logicalTypeOptions:
          minimum: 0
          maximum: 1
      - name: note
        description: Free text, no rule.
        logicalType: string
        physicalType: VARCHAR
    quality:
      - name: some_rows
        description: At least one row.
        metric: rowCount
        mustBeGreaterThan: 0
        severity: reject
"""


def test_a_contract_of_ones_own(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(CUSTOM)
    contract = load_contract_file(path)
    rules = {r.name: r for r in mart_rules(contract)}
    # a one-column key gets its uniqueness checked even without `unique: true`
    assert list(rules) == [
        "id.required",
        "id.unique",
        "share.minimum",
        "share.maximum",
        "some_rows",
    ]
    assert suite_columns(contract) == ["id", "share"]
    suite = build_mart_suite(contract)
    assert suite.name == "tiny_mart_v2.0.0"
    metas = {e.meta["rule"]: e.meta["severity"] for e in suite.expectations}
    assert metas == {
        "id.required": "reject",
        "id.unique": "reject",
        "share.minimum": "warn",
        "share.maximum": "warn",
        "some_rows": "reject",
    }
    rows = next(e for e in suite.expectations if e.meta["rule"] == "some_rows")
    assert rows.expectation_type == "expect_table_row_count_to_be_between"
    assert rows.configuration.kwargs["min_value"] == 0 and rows.configuration.kwargs["strict_min"]
