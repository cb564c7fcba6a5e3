"""The SQL model files: dependencies found and ordered, headers, a contract per mart, cycles reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.transform.marts import ModelError, build_order, load_models


def test_model_dependencies_are_found_and_ordered() -> None:
    models = load_models()
    order = build_order(models)
    assert (
        order.index("stg_orders")
        < order.index("int_orders")
        < order.index("int_customers")
        < order.index("mart_customer_rfm")
    )
    assert order.index("mart_customer_rfm") < order.index("mart_segment_summary")
    # the thin mart joins the concept models, each of which takes its own parameters (the RFM
    # scores are binned, for the snapshot day and the lookback days, in one model)
    parts = {
        "int_customer_rfm_scores": ("int_customer_rfm_scores_daily", "rfm_bins"),
        "int_customer_abc_class": ("int_customer_abc_class", "abc_a_share"),
        "int_customer_lifecycle_stage": ("int_customer_lifecycle_stage", "lifecycle_lapsed_factor"),
    }
    assert set(parts) <= models["mart_customer_rfm"].depends_on
    for name, (formula, param) in parts.items():
        assert param in models[formula].params, name
        assert formula == name or formula in models[name].depends_on, name
        assert order.index("int_customers") < order.index(name) < order.index("mart_customer_rfm")
    assert not models["mart_customer_rfm"].params  # a join, no formulas of its own
    assert "int_customers" in models["int_customer_rfm_measures"].depends_on
    assert "int_customer_rfm_measures" in models["int_customer_rfm_scores_daily"].depends_on
    assert models["stg_orders"].materialized == "view"


def test_every_model_file_has_a_header_with_grain_and_inputs() -> None:
    for model in load_models().values():
        head = model.sql.split("\n\n")[0]
        assert head.startswith(f"-- {model.name}"), model.path
        assert "Grain:" in model.sql and "Inputs:" in model.sql, model.path


def test_every_mart_has_a_contract() -> None:
    from pipelines.contracts import load_contract

    for model in load_models().values():
        if model.published_name:
            assert load_contract(model.published_name).name == model.published_name


def test_cycles_are_reported(tmp_path: Path) -> None:
    (tmp_path / "int_a.sql").write_text("select * from int_b")
    (tmp_path / "int_b.sql").write_text("select * from int_a")
    with pytest.raises(ModelError, match="cycle"):
        build_order(load_models(tmp_path))
