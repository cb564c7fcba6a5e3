"""What a report is rendered from, and where that is read: published tables and the manifest.

A report shows a snapshot's published tables -- never the orders, the raw zone or the
quarantine, which hold source values (PII). Of the tables with a row per customer only the
columns the page shows are read (`CUSTOMER_COLUMNS`): a column added to a mart later (an
e-mail hash, say) cannot reach a page by accident; customer_journey, shown only as counts and
averages, is read without even its customer_id. A snapshot published before a table existed
(customer_journey and journey_summary are newer than the rest) simply lacks it, and the
section that shows it says so. The publish stage reads the version it is about to commit;
`custval report` reads the version the published manifest pins; both hand `render` the same
`ReportInputs`, so the two pages agree.

The tables with a row per customer are never read whole: they are scanned (`ReportInputs.scan`)
and each section collects only its aggregates, or the one or three numeric columns it ranks
(the Pareto curve, the CLV deciles, the P(alive) grid). At 31M customers the three tables
read whole took 17 GB; the page's memory now grows with the widest of those few columns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from pipelines.config import Config
from pipelines.storage import layout, snapshots

TABLES = (
    "kpi_summary",
    "segment_summary",
    "customer_rfm",
    "customer_clv",
    "cohort_retention",
    "model_fit",
    "model_backtest",
    "customer_journey",
    "journey_summary",
)
CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_rfm": (
        "customer_id",
        "last_order_date",
        "order_count",
        "monetary_total",
        "rfm_segment",
        "abc_class",
        "loyalty_tier",
        "lifecycle_stage",
    ),
    "customer_clv": (
        "customer_id",
        "clv_simple",
        "clv_retention",
        "frequency",
        "recency",
        "T",
        "p_alive",
        "cac",
        "ltv_cac_ratio",
        "ltv_cac_status",
    ),
    "customer_journey": (
        "journey_stage",
        "activity_state",
        "days_to_second_purchase",
        "first_order_value",
        "recent_order_value",
        "aov_growth",
        "acquisition_channel",
        "cac",
        "first_order_profit_after_cac",
        "cac_paid_back",
        "cac_payback_orders",
        "cac_payback_days",
    ),
}
CUSTOMER_COLUMN_PREFIXES = ("predicted_clv_",)  # one per configured horizon


@dataclass(frozen=True)
class ReportSettings:
    """The few config values the page explains its figures with."""

    currency: str = "USD"
    active_days: int = 90
    predictive_enabled: bool | None = None  # None: not known (the config file is gone)
    ltv_cac_break_even: float = 1.0
    ltv_cac_benchmark: float = 3.0
    ltv_cac_generous: float = 5.0

    @classmethod
    def from_config(cls, config: Config, *, known: bool = True) -> ReportSettings:
        t = config.clv.ltv_cac_thresholds
        return cls(
            currency=config.reporting_currency,
            active_days=config.activity.active_days,
            predictive_enabled=config.predictive.enabled if known else None,
            ltv_cac_break_even=t.break_even,
            ltv_cac_benchmark=t.benchmark,
            ltv_cac_generous=t.generous,
        )


Frame = pl.DataFrame | pl.LazyFrame


@dataclass(frozen=True)
class ReportInputs:
    """Everything one page shows. `tables` are the published marts by name (a missing one is
    shown as missing): the per-customer ones scanned (`read_tables`) or given whole (tests), the
    rest small; `manifest` is the snapshot's manifest, or the one being committed."""

    snapshot_date: date
    tables: Mapping[str, Frame]
    manifest: Mapping[str, Any]
    settings: ReportSettings = field(default_factory=ReportSettings)
    previous_snapshot: date | None = None
    previous_kpis: Mapping[str, Any] | None = None
    data_docs_href: str | None = None  # relative to the page

    def __post_init__(self) -> None:
        # Money is published as DECIMAL; the page computes, plots and formats with floats.
        object.__setattr__(self, "tables", {k: as_floats(v) for k, v in self.tables.items()})
        if self.previous_kpis is not None:
            kpis = {
                k: float(v) if isinstance(v, Decimal) else v for k, v in self.previous_kpis.items()
            }
            object.__setattr__(self, "previous_kpis", kpis)

    def table(self, name: str) -> pl.DataFrame:
        """A small table (a row per snapshot, segment, cohort or model) whole; empty if missing.
        The per-customer tables are read with `scan`."""
        if name in CUSTOMER_COLUMNS:
            raise ValueError(f"{name} has a row per customer: scan it, do not read it whole")
        frame = self.tables.get(name, pl.DataFrame())
        return frame.collect() if isinstance(frame, pl.LazyFrame) else frame

    def scan(self, name: str) -> pl.LazyFrame:
        """A table as a lazy query (an empty one if missing): collect aggregates, not rows."""
        return self.tables.get(name, pl.DataFrame()).lazy()


def as_floats(frame: Frame) -> Frame:
    """The frame with its DECIMAL (money) columns as Float64."""
    schema = frame.collect_schema() if isinstance(frame, pl.LazyFrame) else frame.schema
    decimals = [name for name, dtype in schema.items() if isinstance(dtype, pl.Decimal)]
    return frame.with_columns(pl.col(decimals).cast(pl.Float64)) if decimals else frame


def customers(inputs: ReportInputs) -> pl.LazyFrame:
    """customer_rfm, scanned: one row per customer (no rows when the table is missing)."""
    return inputs.scan("customer_rfm")


def column_names(frame: pl.LazyFrame) -> list[str]:
    return frame.collect_schema().names()


def collected(query: pl.LazyFrame) -> pl.DataFrame:
    """A query over a per-customer table run by Polars' streaming engine, in bounded memory."""
    return query.collect(engine="streaming")


def row_count(frame: pl.LazyFrame) -> int:
    return int(collected(frame.select(pl.len())).item())


def _wanted(name: str, columns: list[str]) -> list[str]:
    allowed = CUSTOMER_COLUMNS.get(name)
    if allowed is None:
        return columns
    return [c for c in columns if c in allowed or c.startswith(CUSTOMER_COLUMN_PREFIXES)]


def read_table(path: Path, name: str) -> Frame | None:
    """A published table: the per-customer ones scanned, the others read whole."""
    if not path.is_file():
        return None
    columns = _wanted(name, pq.read_schema(path).names)
    if name in CUSTOMER_COLUMNS:
        return as_floats(pl.scan_parquet(path, glob=False).select(columns))
    return as_floats(pl.read_parquet(path, columns=columns, glob=False))


def read_tables(marts: Path) -> dict[str, Frame]:
    """The report's tables from a version's `marts/` directory (`marts/<table>/part-0.parquet`)."""
    out = {}
    for name in TABLES:
        frame = read_table(marts / name / layout.TABLE_FILE, name)
        if frame is not None:
            out[name] = frame
    return out


def previous_kpis(warehouse: Path, snapshot: date) -> tuple[date | None, dict[str, Any] | None]:
    """The KPI row of the newest published snapshot before `snapshot`, for the changes."""
    earlier = [day for day in snapshots.published_snapshots(warehouse) if day < snapshot]
    if not earlier:
        return None, None
    frame = read_table(layout.table_file(warehouse, "kpi_summary", earlier[-1]), "kpi_summary")
    assert not isinstance(frame, pl.LazyFrame)  # kpi_summary is one row, read whole
    if frame is None or frame.height == 0:
        return earlier[-1], None
    return earlier[-1], frame.row(0, named=True)


def data_docs_href(manifest: Mapping[str, Any], page_dir: Path) -> str | None:
    """The Great Expectations page of the run's validation, relative to the report page."""
    validation = manifest.get("validation") or {}
    target = validation.get("docs_page") or validation.get("docs_index")
    if not target:
        return None
    return Path(os.path.relpath(target, page_dir)).as_posix()


def collect(
    warehouse: Path,
    snapshot: date,
    marts: Path,
    manifest: Mapping[str, Any],
    settings: ReportSettings,
    page_dir: Path,
) -> ReportInputs:
    before, kpis = previous_kpis(warehouse, snapshot)
    return ReportInputs(
        snapshot_date=snapshot,
        tables=read_tables(marts),
        manifest=manifest,
        settings=settings,
        previous_snapshot=before,
        previous_kpis=kpis,
        data_docs_href=data_docs_href(manifest, page_dir),
    )
