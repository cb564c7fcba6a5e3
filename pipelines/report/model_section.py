"""The predictive-model section: the fitted parameters, a P(alive) matrix, the backtest, drift.

The P(alive) matrix is computed here from the published parameters of the purchase model that
scored the snapshot (model_fit) with the project's own fitters
(`purchase_models.from_params(...).p_alive`), over a grid cut at
quantiles of the customers' frequency and days since their last purchase: the page shows the
customers the shop has, not the corner one outlier stretches the axes to. When the models
did not run (turned off, too little history, a failed fit) the section says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from pipelines.predictive.purchase_models import LABELS, PURCHASE_MODELS, from_params
from pipelines.report import figures
from pipelines.report.blocks import Block, Figure, Note, Section, Table, count, number
from pipelines.report.inputs import ReportInputs, collected, column_names

Formatter = Callable[[Any], str]
FREQUENCY_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
GAP_QUANTILES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
FIT_COLUMNS = (
    ("log_likelihood", "Log-likelihood", number),
    ("customers_used", "Customers used", count),
    ("customers_excluded", "Excluded", count),
    ("converged", "Converged", lambda v: "yes" if v else "no"),
    ("iterations", "Iterations", count),
    ("status", "Status", str),
    ("fitted_on", "Fitted on", str),
)  # `seconds` is left out (a timing: the one value a rerun does not repeat); notes go below


def _why_no_model(inputs: ReportInputs) -> str:
    if inputs.settings.predictive_enabled is False:
        return (
            "The predictive models are turned off for this warehouse (predictive.enabled: false "
            "in the config), so there are no fits, predictions or backtest to show."
        )
    reasons = [w for w in inputs.manifest.get("warnings") or [] if "skipped" in w or "model" in w]
    if reasons:
        return "No model was fitted for this snapshot: " + "; ".join(reasons) + "."
    return (
        "No model was fitted for this snapshot (model_fit is empty): the models are turned off "
        "in the config, or the history was too short to fit them."
    )


def parameter_table(fits: pl.DataFrame) -> Table:
    """One row per fit and model: its parameters on one line, then how the fit went."""
    keys = ["fit", "model"]
    extra = [c for c in FIT_COLUMNS if c[0] in fits.columns]
    rows = []
    groups = fits.select(keys).unique(maintain_order=True).iter_rows()
    for fit, model in groups:
        part = fits.filter((pl.col("fit") == fit) & (pl.col("model") == model))
        params = ", ".join(
            f"{r['param']} = {number(r['value'], 4)}"
            for r in part.iter_rows(named=True)
            if r.get("param") is not None and r.get("value") is not None
        )
        head = part.row(0, named=True)
        rows.append(
            [str(fit), str(model), params or "–"]
            + ["–" if head.get(c) is None else fmt(head.get(c)) for c, _, fmt in extra]
        )
    headers = ["Fit", "Model", "Parameters", *(h for _, h, _ in extra)]
    numeric = [False, False, False, *(fmt in (number, count) for _, _, fmt in extra)]
    return Table(headers, rows, numeric, caption="Time parameters (alpha, beta) are in days.")


def purchase_params(fits: pl.DataFrame) -> tuple[str, dict[str, float]] | None:
    """The purchase model that scored the snapshot and its parameters, when usable."""
    if not {"fit", "model", "param", "value"} <= set(fits.columns):
        return None
    snapshot = fits.filter(
        (pl.col("fit") == "snapshot") & pl.col("model").is_in(list(PURCHASE_MODELS))
    )
    if "status" in snapshot.columns:
        snapshot = snapshot.filter(pl.col("status") != "failed")
    for name in snapshot["model"].unique(maintain_order=True).to_list():
        rows = snapshot.filter(pl.col("model") == name)
        values = {str(r["param"]): r["value"] for r in rows.iter_rows(named=True)}
        if any(v is None or np.isnan(v) for v in values.values()):
            continue
        try:
            from_params(name, values)
        except (TypeError, ValueError):
            continue
        return name, {k: float(v) for k, v in values.items()}
    return None


def p_alive_grid(
    fitted: tuple[str, dict[str, float]], clv: pl.DataFrame | pl.LazyFrame
) -> tuple[list[int], list[int], int, list[list[float | None]]] | None:
    """P(alive) over repeat purchase days x days since the last purchase, at a typical T.

    T is the median age of the repeat customers; frequencies and gaps are quantiles of theirs
    (a customer with x repeat purchase days needs at least x days between first and last, so
    those impossible cells are blank). Frequency 0 is left out: BG/NBD scores every one-time
    buyer as alive, the other models score them by T alone.
    """
    if not {"frequency", "recency", "T"} <= set(column_names(clv.lazy())):
        return None
    repeat = collected(
        clv.lazy().select("frequency", "recency", "T").drop_nulls().filter(pl.col("frequency") > 0)
    )
    if repeat.height == 0:
        return None
    f = repeat["frequency"].to_numpy().astype(np.float64)
    gap = (repeat["T"] - repeat["recency"]).to_numpy().astype(np.float64)
    age = int(np.median(repeat["T"].to_numpy()))
    freqs = sorted({max(1, round(float(q))) for q in np.quantile(f, FREQUENCY_QUANTILES)})
    gaps = sorted({min(age, round(float(q))) for q in np.quantile(gap, GAP_QUANTILES)})
    model = from_params(*fitted)
    x = np.array(freqs, dtype=np.float64)[:, None]
    recency = (age - np.array(gaps, dtype=np.float64))[None, :]
    x_b, r_b = np.broadcast_arrays(x, recency)
    alive = model.p_alive(x_b, r_b, np.full(x_b.shape, float(age)))
    cells = [
        [None if r_b[i, j] < x_b[i, j] else float(alive[i, j]) for j in range(len(gaps))]
        for i in range(len(freqs))
    ]
    keep_rows = [i for i in range(len(freqs)) if any(v is not None for v in cells[i])]
    keep_cols = [j for j in range(len(gaps)) if any(cells[i][j] is not None for i in keep_rows)]
    if not keep_cols:
        return None
    grid = [[cells[i][j] for j in keep_cols] for i in keep_rows]
    return [freqs[i] for i in keep_rows], [gaps[j] for j in keep_cols], age, grid


def comparison_blocks(backtest: pl.DataFrame) -> list[Block]:
    """Every backtested model's overall errors and Gini, and the scoring model's deciles."""
    overall = backtest.filter(pl.col("scope") == "overall")
    blocks: list[Block] = []
    if overall.height > 1:
        spec: list[tuple[str, str, Formatter]] = [
            ("model", "Model", lambda m: LABELS.get(str(m), str(m))),
            ("selected", "Scores the snapshot", lambda v: "yes" if v else "no"),
            ("mae", "MAE", number),
            ("rmse", "RMSE", number),
            ("correlation", "Correlation", number),
            ("gini", "Gini of value", number),
        ]
        spec = [c for c in spec if c[0] in overall.columns]
        blocks.append(
            Table(
                [h for _, h, _ in spec],
                [
                    ["–" if r.get(c) is None else fmt(r.get(c)) for c, _, fmt in spec]
                    for r in overall.iter_rows(named=True)
                ],
                [fmt is number for _, _, fmt in spec],
                caption="The candidate purchase models on the same holdout (predictive.model "
                "auto picks the lowest MAE).",
            )
        )
    deciles = backtest.filter(pl.col("selected") & pl.col("scope").str.starts_with("decile="))
    if deciles.height:
        svg = figures.paired_bars(
            "backtest-deciles",
            "Predicted and actual holdout purchases by decile of prediction",
            [s.removeprefix("decile=") for s in deciles["scope"].to_list()],
            {
                "predicted": deciles["mean_predicted"].to_list(),
                "actual": deciles["mean_actual"].to_list(),
            },
            "purchase days per customer",
        )
        gini = overall.filter(pl.col("selected"))["gini"] if "gini" in overall.columns else None
        shown = (
            f" Gini of predicted against actual holdout value: {number(gini[0])}."
            if gini is not None and gini.len() and gini[0] is not None
            else ""
        )
        blocks.append(
            Figure(
                svg,
                "Customers ranked into tenths by predicted holdout purchases (10 = highest): "
                "mean predicted (blue) and actual (orange) purchase days." + shown,
            )
        )
    return blocks


def backtest_blocks(backtest: pl.DataFrame) -> list[Block]:
    need = {"scope", "mean_predicted", "mean_actual"}
    if backtest.height == 0 or not need <= set(backtest.columns):
        return [Note("No backtest for this snapshot: the calibration window was not fitted.")]
    blocks: list[Block] = []
    if "selected" in backtest.columns:
        blocks += comparison_blocks(backtest)
        backtest = backtest.filter(pl.col("selected"))
        if backtest.height == 0:
            return blocks
    per = backtest.filter(pl.col("scope").str.starts_with("frequency="))
    first = backtest.row(0, named=True)
    if per.height:
        svg = figures.paired_bars(
            "backtest",
            "Predicted and actual repeat purchases in the holdout",
            [s.removeprefix("frequency=") for s in per["scope"].to_list()],
            {"predicted": per["mean_predicted"].to_list(), "actual": per["mean_actual"].to_list()},
            "purchase days per customer",
        )
        blocks.append(
            Figure(
                svg,
                "Mean purchase days per customer in the holdout, by repeat purchase days in the "
                "calibration period: predicted (blue) and actual (orange).",
            )
        )
    spec: list[tuple[str, str, Formatter]] = [
        ("scope", "Scope", str),
        ("customers", "Customers", count),
        ("predicted_purchases", "Predicted", number),
        ("actual_purchases", "Actual", count),
        ("mae", "MAE", number),
        ("rmse", "RMSE", number),
        ("correlation", "Correlation", number),
    ]
    spec = [s for s in spec if s[0] in backtest.columns]
    backtest = backtest.filter(~pl.col("scope").str.starts_with("decile="))
    window = ""
    if first.get("calibration_end") is not None and first.get("holdout_days") is not None:
        window = (
            f" Fitted on purchases up to {first['calibration_end']}, predicting the next "
            f"{first['holdout_days']} days."
        )
    blocks.append(
        Table(
            [h for _, h, _ in spec],
            [
                ["–" if r.get(c) is None else fmt(r.get(c)) for c, _, fmt in spec]
                for r in backtest.iter_rows(named=True)
            ],
            [fmt is not str for _, _, fmt in spec],
            caption="Backtest errors per customer, in purchase days." + window,
        )
    )
    return blocks


def model_section(inputs: ReportInputs) -> Section:
    read = (
        "The models behind the predicted CLV: their parameters, how likely a customer is still "
        "active given their history, and how well a fit on older data predicted the last months."
    )
    title = "Predictive models"
    fits = inputs.table("model_fit")
    drift = [w for w in inputs.manifest.get("warnings") or [] if "drift" in w]
    drift_blocks: list[Block] = [Note(w, "warn") for w in drift] or [
        Note("No drift warning: the backtest error is in line with the previous snapshot's.", "ok")
    ]
    if fits.height == 0 or "param" not in fits.columns:
        return Section("model", title, read, [*drift_blocks], empty=_why_no_model(inputs))
    blocks: list[Block] = [parameter_table(fits)]
    fitted = purchase_params(fits)
    grid = p_alive_grid(fitted, inputs.scan("customer_clv")) if fitted is not None else None
    if grid is not None:
        freqs, gaps, age, cells = grid
        svg = figures.heatmap(
            "palive",
            "P(alive) by repeat purchases and days since the last purchase",
            [str(f) for f in freqs],
            [str(g) for g in gaps],
            cells,
            xlabel="days since the last purchase",
            ylabel="repeat purchase days",
        )
        blocks.append(
            Figure(
                svg,
                f"Probability that a customer first seen {age} days ago (the median repeat "
                "customer) is still active, by their repeat purchase days and the days since "
                "their last purchase; darker is more likely alive.",
            )
        )
    else:
        blocks.append(
            Note(
                "No P(alive) matrix: the snapshot has no usable purchase-model fit or no repeat "
                "customer."
            )
        )
    notes: list[Any] = []
    if "note" in fits.columns:
        notes = [n for n in fits["note"].drop_nulls().unique(maintain_order=True).to_list() if n]
    blocks += [Note(str(n), "warn") for n in notes]
    blocks += backtest_blocks(inputs.table("model_backtest"))
    blocks += drift_blocks
    return Section("model", title, read, blocks)
