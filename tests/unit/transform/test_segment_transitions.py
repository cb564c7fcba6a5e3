"""Segment transitions: the SQL models on hand-made inputs, and the previous snapshot's reader.

The models are built on hand-made `int_customers`, `int_customer_rfm_segment` and
`source_previous_rfm` tables; every expected value is worked out by hand below.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.contracts import load_contract
from pipelines.publish.tables import conform
from pipelines.storage import layout
from pipelines.transform.marts import connect, load_models
from pipelines.transform.previous_snapshot import SCHEMA, empty_previous_rfm, previous_rfm

PREVIOUS, SNAPSHOT = date(2024, 3, 31), date(2024, 4, 30)
CHAIN = (
    "stg_previous_rfm",
    "int_customer_segment_transitions",
    "mart_segment_transitions",
    "mart_segment_transition_summary",
)

# The previous snapshot (2024-03-31): customer, segment, net revenue to date, segment_changed_on
PREVIOUS_ROWS = [
    ("A", "champions", 100.0, date(2024, 2, 29)),  # -> at_risk: changed
    ("F", "champions", 10.0, date(2024, 1, 31)),  # stays champions
    ("B", "loyal_customers", 50.0, date(2024, 1, 31)),  # stays: keeps 01-31
    ("E", "loyal_customers", 30.0, None),  # stays; its snapshot predates segment_transitions
    ("D", "hibernating", 20.0, date(2024, 3, 31)),  # disappears
]
# This snapshot (2024-04-30): customer, segment, net revenue to date; C is new
CURRENT_ROWS = [
    ("A", "at_risk", "120.5"),
    ("B", "loyal_customers", "50"),
    ("C", "promising", "15.25"),
    ("E", "loyal_customers", "30"),
    ("F", "champions", "12"),
]


def _previous_frame(rows: list[tuple], day: date = PREVIOUS) -> pl.DataFrame:
    return pl.DataFrame(
        [(day, c, s, m, changed) for c, s, m, changed in rows], schema=SCHEMA, orient="row"
    )


def _build(current: list[tuple], previous: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Build the transition models (and only them) on hand-made inputs; published tables."""
    models = load_models()
    assert models["int_customer_segment_transitions"].depends_on == {
        "int_customers",
        "int_customer_rfm_segment",
        "stg_previous_rfm",
    }
    assert models["stg_previous_rfm"].materialized == "view"
    params = {"snapshot_date": SNAPSHOT.isoformat()}
    con = connect()
    try:
        customers = pl.DataFrame(
            {"customer_id": [c for c, _, _ in current], "net_revenue": [m for _, _, m in current]}
        ).with_columns(pl.col("net_revenue").str.to_decimal(scale=4).cast(pl.Decimal(18, 4)))
        segments = pl.DataFrame(
            {"customer_id": [c for c, _, _ in current], "rfm_segment": [s for _, s, _ in current]}
        )
        con.register("int_customers", customers)
        con.register("int_customer_rfm_segment", segments)
        con.register("source_previous_rfm", previous)
        for name in CHAIN:
            model = models[name]
            con.execute(
                f"create or replace {model.materialized} {name} as\n{model.sql}",
                {k: params[k] for k in model.params},
            )
        out = {}
        for name in CHAIN[2:]:
            published = models[name].published_name
            assert published is not None
            out[published] = _published(con, name, published)
        return out
    finally:
        con.close()


def _published(con: duckdb.DuckDBPyConnection, name: str, table: str) -> pl.DataFrame:
    arrow = conform(con.sql(f"select * from {name}").to_arrow_table(), load_contract(table))
    frame = pl.from_arrow(arrow)
    assert isinstance(frame, pl.DataFrame)
    return frame


@pytest.fixture(scope="module")
def built() -> dict[str, pl.DataFrame]:
    return _build(CURRENT_ROWS, _previous_frame(PREVIOUS_ROWS))


def test_each_customer_gets_its_previous_segment_and_the_date_it_last_changed(
    built: dict[str, pl.DataFrame],
) -> None:
    rows = {r["customer_id"]: r for r in built["segment_transitions"].to_dicts()}
    assert list(rows) == ["A", "B", "C", "E", "F"]  # ordered; D disappeared, so no row
    assert {r["previous_snapshot_date"] for r in rows.values()} == {PREVIOUS}
    expected = {
        #     previous,          current,           changed, segment_changed_on
        "A": ("champions", "at_risk", True, SNAPSHOT),  # changed: today
        "B": ("loyal_customers", "loyal_customers", False, date(2024, 1, 31)),  # kept
        "C": (None, "promising", False, SNAPSHOT),  # new: today, not "changed"
        "E": ("loyal_customers", "loyal_customers", False, PREVIOUS),  # no older date known
        "F": ("champions", "champions", False, date(2024, 1, 31)),
    }
    for customer, (prev, now, changed, since) in expected.items():
        row = rows[customer]
        got = (row["previous_segment"], row["rfm_segment"], row["changed"])
        assert got == (prev, now, changed), customer
        assert row["segment_changed_on"] == since, customer


def test_the_summary_counts_every_transition_with_new_and_disappeared_customers(
    built: dict[str, pl.DataFrame],
) -> None:
    summary = built["segment_transition_summary"]
    assert summary["previous_snapshot_date"].to_list() == [PREVIOUS] * 5
    got = summary.select(
        "previous_segment", "rfm_segment", "customers", "customer_share", "revenue",
        "previous_revenue",
    ).rows()  # fmt: skip
    assert got == [
        # new customers first (previous_segment null): C
        (None, "promising", 1, 1.0, 15.25, 0.0),
        # two champions: A fell to at_risk, F stayed; half each
        ("champions", "at_risk", 1, 0.5, 120.5, 100.0),
        ("champions", "champions", 1, 0.5, 12.0, 10.0),
        # D disappeared: no revenue now, 20 before
        ("hibernating", None, 1, 1.0, 0.0, 20.0),
        # B and E stayed
        ("loyal_customers", "loyal_customers", 2, 1.0, 80.0, 80.0),
    ]
    # every customer of either snapshot is counted once
    assert summary["customers"].sum() == len({r[0] for r in CURRENT_ROWS + PREVIOUS_ROWS})


def test_without_a_previous_snapshot_every_customer_is_new() -> None:
    built = _build(CURRENT_ROWS, empty_previous_rfm())
    transitions = built["segment_transitions"]
    assert transitions["previous_snapshot_date"].null_count() == transitions.height == 5
    assert transitions["previous_segment"].null_count() == 5
    assert not transitions["changed"].any()
    assert set(transitions["segment_changed_on"]) == {SNAPSHOT}
    summary = built["segment_transition_summary"]
    assert summary["previous_segment"].null_count() == summary.height == 4
    assert summary.select("rfm_segment", "customers", "customer_share").rows() == [
        ("at_risk", 1, 0.2),
        ("champions", 1, 0.2),
        ("loyal_customers", 2, 0.4),
        ("promising", 1, 0.2),
    ]
    assert summary["revenue"].sum() == pytest.approx(227.75)


def test_a_rebuild_gives_the_same_rows(built: dict[str, pl.DataFrame]) -> None:
    again = _build(CURRENT_ROWS, _previous_frame(PREVIOUS_ROWS))
    for name, frame in built.items():
        assert again[name].equals(frame), name


# ------------------------------------------------------------------------------------------
# Reading the previous snapshot from a warehouse


def _publish(
    warehouse: Path, day: date, rfm: pl.DataFrame, transitions: pl.DataFrame | None = None
) -> None:
    """A published snapshot as the commit leaves it: a version, `current`, links, manifest."""
    root = warehouse / layout.SNAPSHOTS / layout.snapshot_partition(day)
    version = root / "run@0000"
    tables = {"customer_rfm": rfm}
    if transitions is not None:
        tables["segment_transitions"] = transitions
    for name, frame in tables.items():
        path = layout.version_table_file(version, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        link = layout.table_file(warehouse, name, day)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(root / "current" / layout.MARTS / name / layout.TABLE_FILE)
    os.symlink(version.name, root / "current")
    manifest = layout.manifest_path(warehouse, day)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("{}")


def _rfm(segments: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": list(segments),
            "monetary_total": [1.0] * len(segments),
            "rfm_segment": list(segments.values()),
            "r_score": [1] * len(segments),
        }
    )


def test_the_previous_snapshot_is_the_latest_published_before_the_date(tmp_path: Path) -> None:
    wh = tmp_path / "wh"
    assert previous_rfm(wh, SNAPSHOT).schema == empty_previous_rfm().schema
    assert previous_rfm(wh, SNAPSHOT).height == 0
    _publish(wh, date(2024, 3, 30), _rfm({"A": "lost"}))  # before segment_transitions existed
    _publish(
        wh,
        PREVIOUS,
        _rfm({"A": "champions", "B": "lost"}),
        pl.DataFrame({"customer_id": ["A", "B"], "segment_changed_on": [PREVIOUS, None]}),
    )
    _publish(wh, date(2024, 5, 31), _rfm({"A": "at_risk"}))  # later: ignored
    unpublished = layout.table_file(wh, "customer_rfm", date(2024, 4, 15))  # no manifest
    unpublished.parent.mkdir(parents=True)
    _rfm({"A": "promising"}).write_parquet(unpublished)

    previous = previous_rfm(wh, SNAPSHOT)
    assert previous.schema == pl.Schema(SCHEMA)
    assert previous.sort("customer_id").rows() == [
        (PREVIOUS, "A", "champions", 1.0, PREVIOUS),
        (PREVIOUS, "B", "lost", 1.0, None),
    ]
    # the date itself is never its own previous snapshot; an older one without transitions
    older = previous_rfm(wh, PREVIOUS)
    assert older.rows() == [(date(2024, 3, 30), "A", "lost", 1.0, None)]
    assert previous_rfm(wh, date(2024, 3, 30)).height == 0
