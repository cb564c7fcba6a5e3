"""The report page, rendered from frames: every section, offline, no PII, bounded, repeatable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipelines.predictive.fitters.bgnbd import BetaGeoModel
from pipelines.report.abc_classes import pareto_points
from pipelines.report.blocks import NO_CUSTOMERS
from pipelines.report.clv import deciles
from pipelines.report.inputs import ReportInputs, ReportSettings, data_docs_href
from pipelines.report.model_section import p_alive_grid
from pipelines.report.render import render

SECTION_IDS = (
    "kpis",
    "segments",
    "abc",
    "tiers",
    "journey",
    "cohorts",
    "clv",
    "top",
    "model",
    "quality",
)
MakeInputs = Callable[..., ReportInputs]


def sections(html: str) -> dict[str, str]:
    """Each section's HTML by id."""
    found = re.findall(r'<section id="([a-z]+)">(.*?)</section>', html, flags=re.S)
    return dict(found)


def text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))


def assert_offline(html: str) -> None:
    """One file: no script, no external resource, no address of any server."""
    assert "<script" not in html.lower()
    assert re.search(r"https?://", html) is None
    assert re.search(r"\ssrc\s*=", html) is None  # nothing embedded by reference
    assert "<img" not in html and "<link" not in html and "@import" not in html
    for href in re.findall(r'\shref="([^"]*)"', html):
        inline = href.startswith(("#", "data:image/png;base64,"))  # a colour bar's gradient
        assert inline or not re.match(r"[a-z][a-z0-9+.-]*:", href), href


@pytest.mark.slow
def test_full_report_has_every_section_with_inline_figures(make_inputs: MakeInputs) -> None:
    html = render(make_inputs())
    found = sections(html)
    assert tuple(found) == SECTION_IDS
    for sid, body in found.items():
        assert re.search(r'<p class="read">[^<]{30,}</p>', body), (
            f"{sid}: no sentence on how to read it"
        )
        assert 'class="empty"' not in body, sid
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(svgs) == html.count("<figure>") >= 8  # every figure is an inline svg
    for svg in svgs:
        assert "<metadata" not in svg and "<?xml" not in svg and "DOCTYPE" not in svg
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "element ids repeat across figures"
    assert_offline(html)
    assert "default-src 'none'" in html  # the browser itself refuses any request


@pytest.mark.slow
def test_kpi_cards_show_the_figures_and_their_change(make_inputs: MakeInputs) -> None:
    inputs = make_inputs()
    kpis = inputs.tables["kpi_summary"].row(0, named=True)
    previous = {**kpis, "customers": kpis["customers"] / 1.25, "churn_rate": 0.6}
    html = render(make_inputs(previous=previous))
    cards = text(sections(html)["kpis"])
    assert f"Customers {kpis['customers']:,}" in cards
    assert f"{kpis['repeat_purchase_rate'] * 100:.1f}%" in cards
    assert f"{kpis['average_order_value']:,.2f}" in cards
    assert "+25.0%" in cards  # customers: 2,000 now, 1,600 before
    assert "-4.6 pp" in cards  # churn 55.38% after 60%
    assert re.search(r'class="change good">-4.6 pp', html)  # lower churn is better
    assert "since the previous published snapshot, 2025-12-29" in cards
    first = text(sections(render(make_inputs()))["kpis"])
    assert "first published snapshot" in first


@pytest.mark.slow
def test_rendering_is_byte_identical_across_processes(
    make_inputs: MakeInputs, tmp_path: Path
) -> None:
    inputs = make_inputs(n=500)
    html = render(inputs)
    assert render(inputs) == html
    for name, frame in inputs.tables.items():
        frame.write_parquet(tmp_path / f"{name}.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps(dict(inputs.manifest)))
    script = f"""
import json, sys
from datetime import date
from pathlib import Path
import polars as pl
from pipelines.report.inputs import ReportInputs, ReportSettings
from pipelines.report.render import render
d = Path({str(tmp_path)!r})
tables = {{p.stem: pl.read_parquet(p) for p in d.glob("*.parquet")}}
inputs = ReportInputs(date(2025, 12, 30), tables, json.loads((d / "manifest.json").read_text()),
    ReportSettings(predictive_enabled=True), data_docs_href={inputs.data_docs_href!r})
sys.stdout.write(render(inputs))
"""
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert other.stdout == html


@pytest.mark.slow
def test_no_pii_reaches_the_page(make_inputs: MakeInputs) -> None:
    inputs = make_inputs(n=300)
    html = render(inputs)
    rfm, clv = inputs.tables["customer_rfm"], inputs.tables["customer_clv"]
    secrets = {*rfm["email"].to_list(), *rfm["name"].to_list(), *clv["email"].to_list()}
    secrets |= set(rfm["email_hmac"].to_list())
    assert len(secrets) > 600
    assert [s for s in secrets if s in html] == []
    assert "secret-mail" not in html and "Lastname" not in html
    top = inputs.tables["customer_rfm"].sort(
        ["monetary_total", "customer_id"], descending=[True, False]
    )
    assert top["customer_id"][0] in sections(html)["top"]  # the pseudonymous id is shown


@pytest.mark.slow
def test_tiny_snapshot(make_inputs: MakeInputs) -> None:
    html = render(make_inputs(n=3))
    assert tuple(sections(html)) == SECTION_IDS
    assert_offline(html)


def test_a_snapshot_without_customers_says_why_each_section_is_empty(
    make_inputs: MakeInputs,
) -> None:
    html = render(make_inputs(n=0, model=False))
    found = sections(html)
    for sid in ("segments", "abc", "tiers", "cohorts", "clv", "top"):
        assert NO_CUSTOMERS in text(found[sid]), sid
    assert "turned off" in text(found["model"])
    assert "rows in 1,000 = accepted 993 + quarantined 5 + duplicate 2" in text(found["quality"])


@pytest.mark.slow
def test_no_repeat_buyers_and_no_fit(make_inputs: MakeInputs) -> None:
    warning = "predictions skipped: 120 days of purchase history, fewer than predictive.min_history_days (180)"
    inputs = make_inputs(n=400, repeat=False, model=False, warnings=[warning])
    inputs = replace(inputs, settings=ReportSettings(predictive_enabled=True))
    found = sections(render(inputs))
    model = text(found["model"])
    assert "No model was fitted for this snapshot" in model and "120 days" in model
    assert "retention CLV" in text(found["clv"])  # the CLV falls back to a formula CLV
    assert 'class="empty"' not in found["segments"]


@pytest.mark.slow
def test_models_turned_off(make_inputs: MakeInputs) -> None:
    inputs = make_inputs(n=400, model=False, settings=ReportSettings(predictive_enabled=False))
    found = sections(render(inputs))
    assert "predictive.enabled: false" in text(found["model"])
    assert "<svg" not in found["model"]
    assert "not predicted for this snapshot" in text(found["kpis"])


@pytest.mark.slow
def test_missing_tables_and_columns_do_not_break_the_page(make_inputs: MakeInputs) -> None:
    inputs = make_inputs(n=300, drop=("kpi_summary", "segment_summary", "model_backtest"))
    tables = dict(inputs.tables)
    tables["customer_clv"] = tables["customer_clv"].drop("p_alive", "predicted_clv_90", "cac")
    tables["model_fit"] = tables["model_fit"].with_columns(
        pl.lit("carried_forward").alias("status"), pl.lit("fit of 2025-12-29 reused").alias("note")
    )
    found = sections(render(replace(inputs, tables=tables)))
    assert "kpi_summary table of this snapshot is missing" in text(found["kpis"])
    assert "champions" in found["segments"]  # counted from customer_rfm instead
    assert "fit of 2025-12-29 reused" in text(found["model"])
    assert "No backtest for this snapshot" in text(found["model"])


@pytest.mark.slow
def test_size_does_not_grow_with_the_customer_base(make_inputs: MakeInputs) -> None:
    small = render(make_inputs(n=2_000, seed=3))
    big_inputs = make_inputs(n=200_000, seed=3)
    clv = big_inputs.tables["customer_clv"]
    outlier = clv.with_columns(  # one customer with a huge frequency must not stretch the grids
        pl.when(pl.int_range(pl.len()) == 0)
        .then(50_000)
        .otherwise(pl.col("frequency"))
        .alias("frequency"),
        pl.when(pl.int_range(pl.len()) == 0).then(60_000).otherwise(pl.col("T")).alias("T"),
        pl.when(pl.int_range(pl.len()) == 0)
        .then(55_000)
        .otherwise(pl.col("recency"))
        .alias("recency"),
    )
    big = render(replace(big_inputs, tables={**big_inputs.tables, "customer_clv": outlier}))
    assert len(big) < 1_000_000
    assert len(big) < 1.2 * len(small) + 20_000


def test_data_docs_link_is_relative_to_the_page(tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    page = wh / "reports" / "snapshot_date=2025-12-30"
    docs = wh / "docs" / "validation" / "validations" / "x" / "run.html"
    href = data_docs_href({"validation": {"docs_page": str(docs)}}, page)
    assert href == "../../docs/validation/validations/x/run.html"
    assert (page / href).resolve() == docs.resolve()
    assert data_docs_href({"validation": None}, page) is None


def test_pareto_points_by_hand() -> None:
    x, y, total = pareto_points(np.array([20.0, 50.0, -5.0, 30.0]))
    assert total == 100.0
    assert x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert y.tolist() == pytest.approx([0.0, 0.5, 0.8, 1.0, 1.0])


def test_deciles_split_the_customers_and_the_total() -> None:
    values = pl.DataFrame({"customer_id": [f"C{i}" for i in range(95)], "v": list(range(95))})
    out = deciles(values, "v")
    assert [d["decile"] for d in out] == list(range(1, 11))
    assert sum(d["customers"] for d in out) == 95
    assert out[0]["lowest"] == 85 and out[0]["mean"] == pytest.approx(sum(range(85, 95)) / 10)
    assert sum(d["share"] for d in out) == pytest.approx(1.0)


def test_p_alive_matrix_is_the_fitters_on_a_quantile_grid() -> None:
    rng = np.random.default_rng(5)
    n = 5_000
    T = rng.integers(30, 700, n)
    f = rng.integers(0, 12, n)
    r = np.minimum(T, f + rng.integers(0, 300, n))
    f[0], r[0], T[0] = 9_000, 9_500, 10_000  # an outlier: not a grid row of its own
    clv = pl.DataFrame({"frequency": f, "recency": np.where(f > 0, r, 0), "T": T})
    params = {"r": 0.36, "alpha": 34.5, "a": 0.82, "b": 4.1}
    grid = p_alive_grid(("bgnbd", params), clv)
    assert grid is not None
    freqs, gaps, age, cells = grid
    assert min(freqs) >= 1 and max(freqs) <= 12 and len(freqs) <= 7
    assert len(gaps) <= 11 and max(gaps) <= age
    assert age == int(np.median(T[f > 0]))
    model = BetaGeoModel.from_params(**params)
    for i, x in enumerate(freqs):
        for j, gap in enumerate(gaps):
            recency = age - gap
            if recency < x:
                assert cells[i][j] is None
            else:
                expected = float(model.p_alive([x], [recency], [age])[0])
                assert cells[i][j] == pytest.approx(expected)
    assert p_alive_grid(params, clv.with_columns(pl.lit(0).alias("frequency"))) is None


@pytest.mark.slow
def test_model_section_compares_the_candidates_and_shows_the_deciles(
    make_inputs: MakeInputs,
) -> None:
    """The fixture's backtest has BG/NBD (scoring, with frequency and decile rows) and a
    Pareto/NBD candidate: both in the comparison table, only BG/NBD's rows in the rest."""
    inputs = make_inputs()
    body = sections(render(inputs))["model"]
    words = text(body)
    assert "Pareto/NBD" in words and "BG/NBD" in words
    assert "Gini of predicted against actual holdout value: 0.41" in words
    assert 'id="backtest-deciles' in body
    backtest = inputs.tables["model_backtest"]
    decile_scopes = backtest.filter(pl.col("scope").str.starts_with("decile="))["scope"]
    assert all(scope not in words for scope in decile_scopes)  # deciles are a figure only
