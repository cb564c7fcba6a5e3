"""mart_model_backtest from hand-made backtest predictions: every figure recomputed in numpy."""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy.stats import rankdata

from pipelines.config import load_config
from pipelines.transform.marts import build_models, connect, load_models, model_params

SNAPSHOT = date(2024, 6, 30)


def _predictions(seed: int = 5, n: int = 1_003) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frequency = rng.poisson(1.5, n)
    actual = rng.poisson(0.4 + 0.3 * frequency)
    frames = []
    for model, noise in (("bgnbd", 0.3), ("pnbd", 0.6)):
        # rounded, so that many customers tie on their prediction (as distinct rows do)
        predicted = np.round(np.maximum(0.0, 0.4 + 0.3 * frequency + rng.normal(0, noise, n)), 1)
        spend = np.round(rng.gamma(4.0, 10.0, n), 2)
        frames.append(
            pl.DataFrame(
                {
                    "model": model,
                    "selected": model == "bgnbd",
                    "customer_id": [f"C{i:05d}" for i in range(n)],
                    "frequency": frequency,
                    "predicted_purchases": predicted,
                    "actual_purchases": actual,
                    "predicted_value": np.round(predicted * spend, 4),
                    "actual_value": np.round(actual * spend * rng.uniform(0.5, 1.5, n), 4),
                }
            )
        )
    return pl.concat(frames)


def _build(predictions: pl.DataFrame) -> pl.DataFrame:
    config = load_config(None)
    params = model_params(config, SNAPSHOT)
    table = predictions.to_arrow()

    def python_model(con: duckdb.DuckDBPyConnection, p: dict[str, Any]) -> pa.Table:
        return table

    con = connect()
    try:
        build_models(
            con,
            params,
            load_models(),
            {"int_backtest_predictions": (frozenset(), python_model)},
            targets={"mart_model_backtest"},
        )
        return con.sql("select * from mart_model_backtest").pl()
    finally:
        con.close()


def _concentration(rank_by: np.ndarray, value: np.ndarray) -> float:
    """Gini-type concentration of `value` with customers ranked by `rank_by` (midranks: a tie
    counts as the average of its orderings)."""
    n = value.size
    ranks = rankdata(rank_by)  # ascending, ties get their mean rank
    return float(2.0 * (ranks @ value) / (n * value.sum()) - (n + 1.0) / n)


@pytest.fixture(scope="module")
def built() -> tuple[pl.DataFrame, pl.DataFrame]:
    predictions = _predictions()
    return predictions, _build(predictions)


def test_overall_and_frequency_rows_per_model(built: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    predictions, mart = built
    for model in ("bgnbd", "pnbd"):
        p = predictions.filter(pl.col("model") == model)
        err = (p["predicted_purchases"] - p["actual_purchases"]).to_numpy()
        row = mart.filter(pl.col("model") == model, pl.col("scope") == "overall").row(0, named=True)
        assert row["customers"] == p.height
        assert row["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
        assert row["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-12)
        assert row["selected"] is (model == "bgnbd")
        buckets = mart.filter(pl.col("model") == model, pl.col("scope").str.starts_with("freq"))
        assert buckets["customers"].sum() == p.height
        seven = p.filter(pl.col("frequency") >= 7)
        got = buckets.filter(pl.col("scope") == "frequency=7+")["actual_purchases"][0]
        assert got == seven["actual_purchases"].sum()


def test_deciles_follow_duckdb_ntile_over_predicted_then_customer(
    built: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    predictions, mart = built
    p = predictions.filter(pl.col("model") == "pnbd").sort("predicted_purchases", "customer_id")
    n = p.height
    # ntile(10): the first n % 10 tiles hold one row more
    sizes = [n // 10 + (1 if i < n % 10 else 0) for i in range(10)]
    edges = np.cumsum([0, *sizes])
    deciles = mart.filter(pl.col("model") == "pnbd", pl.col("scope").str.starts_with("decile="))
    assert deciles["scope"].to_list() == [f"decile={i}" for i in range(1, 11)]
    for i, row in enumerate(deciles.iter_rows(named=True)):
        part = p.slice(int(edges[i]), sizes[i])
        assert row["customers"] == sizes[i]
        assert row["mean_predicted"] == pytest.approx(part["predicted_purchases"].mean(), rel=1e-12)
        assert row["actual_purchases"] == part["actual_purchases"].sum()
    assert deciles["mean_predicted"].is_sorted()


def test_gini_is_the_normalised_concentration_of_actual_value(
    built: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    predictions, mart = built
    for model in ("bgnbd", "pnbd"):
        p = predictions.filter(pl.col("model") == model)
        actual = p["actual_value"].to_numpy()
        expected = _concentration(p["predicted_value"].to_numpy(), actual) / _concentration(
            actual, actual
        )
        rows = mart.filter(pl.col("model") == model)
        overall = rows.filter(pl.col("scope") == "overall")["gini"][0]
        assert overall == pytest.approx(expected, rel=1e-9)
        assert rows.filter(pl.col("scope") != "overall")["gini"].null_count() == rows.height - 1
    ginis = mart.filter(pl.col("scope") == "overall").sort("model")["gini"].to_list()
    assert ginis[0] > ginis[1] > 0  # the less noisy model ranks value better


def test_a_perfect_ranking_has_gini_one_and_no_value_gives_null() -> None:
    p = _predictions(n=200).filter(pl.col("model") == "bgnbd")
    perfect = _build(p.with_columns(predicted_value=pl.col("actual_value")))
    assert perfect.filter(pl.col("scope") == "overall")["gini"][0] == pytest.approx(1.0)
    none = _build(p.with_columns(actual_value=pl.lit(0.0)))
    assert none.filter(pl.col("scope") == "overall")["gini"][0] is None
