"""Contracts are ODCS documents; rules, types and errors come out of them."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import yaml

from pipelines.contracts import ContractError, all_contracts, load_contract, load_contract_file
from pipelines.resources import contracts_dir


def test_every_contract_loads_and_documents_every_column() -> None:
    contracts = all_contracts()
    assert {"orders", "customer_rfm", "quarantine_orders"} <= set(contracts)
    for c in contracts.values():
        assert c.grain, c.name
        for col in c.columns:
            assert len(col.description) > 10, f"{c.name}.{col.name}"


def test_orders_rules() -> None:
    c = load_contract("orders")
    assert c.required_columns == ["order_id", "customer_id", "order_ts", "amount", "currency"]
    assert c.pii_columns == ["email", "phone", "name"]
    assert c.primary_key == ["order_id"]
    amount_max = c.column("amount").rule("maximum")
    assert amount_max is not None and amount_max.params["value"] == 1_000_000
    assert amount_max.severity == "quarantine" and amount_max.reason_code == "OUT_OF_RANGE"
    currency = c.column("currency").rule("accepted_values")
    assert (
        currency is not None
        and "EUR" in currency.params["values"]
        and "XXX" not in currency.params["values"]
    )
    assert c.column("order_ts").rule("not_in_future").reason_code == "FUTURE_TIMESTAMP"  # type: ignore[union-attr]
    share = c.batch_rule("quarantined_share")
    assert share is not None and share.severity == "reject" and share.params["maxPercent"] == 5
    assert c.column("order_ts").arrow_type == pa.timestamp("us", tz="UTC")


def test_arrow_schema_carries_descriptions() -> None:
    schema = load_contract("customer_rfm").arrow_schema()
    assert (
        schema.field("recency_days")
        .metadata[b"description"]
        .startswith(b"Days from the last purchase")
    )
    assert schema.metadata[b"contract"] == b"customer_rfm"


def test_with_rule_params_overrides_one_rule() -> None:
    c = load_contract("orders")
    narrowed = c.with_rule_params("currency_iso_4217", values=["USD"])
    assert narrowed.column("currency").rule("accepted_values").params["values"] == ["USD"]  # type: ignore[union-attr]
    assert len(c.column("currency").rule("accepted_values").params["values"]) > 100  # type: ignore[union-attr]
    with pytest.raises(ContractError, match="no rule"):
        c.with_rule_params("no_such_rule", x=1)


def _variant(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load((contracts_dir() / "customer_rfm.yaml").read_text())
    mutate(doc)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_unknown_physical_type_is_an_error(tmp_path: Path) -> None:
    def mutate(doc):
        doc["schema"][0]["properties"][0]["physicalType"] = "MONEY"

    with pytest.raises(ContractError, match="physicalType 'MONEY'"):
        load_contract_file(_variant(tmp_path, mutate))


def test_decimal_physical_types(tmp_path: Path) -> None:
    rfm = load_contract("customer_rfm")
    money = rfm.column("monetary_total")
    assert money.physical_type == "DECIMAL(18,2)" and money.decimal == (18, 2)
    assert money.arrow_type == pa.decimal128(18, 2)
    assert money.polars_type == pl.Decimal(18, 2)
    assert rfm.column("avg_order_value").arrow_type == pa.decimal128(18, 4)
    assert rfm.column("recency_days").decimal is None

    def set_type(physical: str, logical: str = "number"):
        def mutate(doc):
            prop = next(p for p in doc["schema"][0]["properties"] if p["name"] == "monetary_total")
            prop["physicalType"], prop["logicalType"] = physical, logical

        return mutate

    cases = {  # DuckDB's spelling, any case or spacing
        "decimal(38, 10)": pa.decimal128(38, 10),
        "DECIMAL(1,0)": pa.decimal128(1, 0),
    }
    for i, (physical, arrow) in enumerate(cases.items()):
        (tmp_path / f"ok{i}").mkdir()
        path = _variant(tmp_path / f"ok{i}", set_type(physical))
        assert load_contract_file(path).column("monetary_total").arrow_type == arrow
    for i, bad in enumerate(("DECIMAL(39,2)", "DECIMAL(4,5)", "DECIMAL(18)", "DECIMAL(0,0)")):
        (tmp_path / f"bad{i}").mkdir()
        with pytest.raises(ContractError, match=rf"physicalType '{re.escape(bad)}'"):
            load_contract_file(_variant(tmp_path / f"bad{i}", set_type(bad)))
    with pytest.raises(ContractError, match="logicalType 'integer' does not fit"):
        load_contract_file(_variant(tmp_path, set_type("DECIMAL(18,2)", "integer")))


def test_missing_description_is_an_error(tmp_path: Path) -> None:
    def mutate(doc):
        del doc["schema"][0]["properties"][1]["description"]

    with pytest.raises(ContractError, match="no description"):
        load_contract_file(_variant(tmp_path, mutate))


def test_not_odcs_is_an_error(tmp_path: Path) -> None:
    def mutate(doc):
        doc["schema"][0]["properties"][0]["logicalType"] = "text"

    with pytest.raises(ContractError, match="not a valid ODCS contract"):
        load_contract_file(_variant(tmp_path, mutate))


def test_data_dictionary_is_up_to_date() -> None:
    from pipelines.tools.dictionary import render

    committed = (contracts_dir().parent / "docs" / "data_dictionary.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/data_dictionary.md is stale: run `uv run custval docs`"


def test_dictionary_lists_every_published_column_and_reason_code() -> None:
    from pipelines.tools.dictionary import render
    from pipelines.validate.quarantine import REASON_CODES

    text = render()
    for contract in all_contracts().values():
        for col in contract.columns:
            assert f"| `{col.name}` |" in text
    for code in REASON_CODES:
        assert f"| `{code}` |" in text
