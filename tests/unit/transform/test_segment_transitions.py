"""Segment transitions: the whole marts build on hand-made orders, over a bounded lookback.

The RFM scores are configured by breakpoints on two bins, so every customer's segment on every
day can be worked out by hand: r = 2 when the last purchase is at most 2 days old, f = 2 from
two orders on; the four (r, f) cells are four segments. The snapshot is D = 2024-03-10 and
the lookback L = 3 (days 03-07 ... 03-09 are rebuilt from D's orders). The expectations are
worked out by hand below, and once more independently: each day's `int_customer_rfm_segment`
is built alone at that date from the orders cut in Polars, and the transitions derived from
those segments in Polars.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from marts_helper import staged_frame

from pipelines.config import Config, ConfigError, load_config
from pipelines.contracts import load_contract
from pipelines.publish.tables import conform
from pipelines.transform.marts import (
    build_models,
    build_snapshot,
    connect,
    load_models,
    model_params,
    register_sources,
)

SNAPSHOT = date(2024, 3, 10)
PREVIOUS = SNAPSHOT - timedelta(days=1)
TABLES = ("segment_transitions", "segment_transition_summary")

CONFIG = """\
predictive:
  enabled: false
rfm:
  bins: 2
  scoring: {r: breakpoints, f: breakpoints, m: quantile}
  breakpoints: {r: [2], f: [2]}
  segments:
    - {segment: active_repeat, r: [2, 2], f: [2, 2]}
    - {segment: active_once,   r: [2, 2], f: [1, 1]}
    - {segment: lapsed_repeat, r: [1, 1], f: [2, 2]}
    - {segment: lapsed_once,   r: [1, 1], f: [1, 1]}
  transition_lookback_days: %d
"""


def _day(month: int, day: int) -> date:
    return date(2024, month, day)


# customer -> purchase days (an order each, at noon UTC unless a datetime is given)
ORDERS: dict[str, list[date | datetime]] = {
    # lapsed_repeat until 03-09, an order on D: active_repeat -- a change on D
    "A": [_day(3, 1), _day(3, 2), _day(3, 10)],
    # active_repeat on 03-07 and 03-08 (last order 03-06), lapsed_repeat from 03-09 on
    "B": [_day(2, 20), _day(2, 25), _day(3, 6)],
    # lapsed_repeat on every day: no change within the lookback
    "C": [_day(1, 1), _day(1, 15)],
    # a customer since D only (new)
    "N": [_day(3, 10)],
    # a customer since the last second of 03-08 (new then: a change), active_once since
    "E": [datetime(2024, 3, 8, 23, 59, 59, tzinfo=UTC)],
    # active_repeat until 03-06, lapsed_repeat since 03-07 = D - 3: outside a 3-day lookback
    "G": [_day(2, 1), _day(2, 2), _day(3, 4)],
}
# customer: segment on 03-06, 03-07, 03-08, 03-09, 03-10 (None: not a customer yet)
SEGMENTS = {
    "A": ["lapsed_repeat"] * 4 + ["active_repeat"],
    "B": ["active_repeat"] * 3 + ["lapsed_repeat"] * 2,
    "C": ["lapsed_repeat"] * 5,
    "N": [None] * 4 + ["active_once"],
    "E": [None, None, "active_once", "active_once", "active_once"],
    "G": ["active_repeat"] + ["lapsed_repeat"] * 4,
}


def _orders() -> pl.DataFrame:
    rows = [
        {"customer_id": customer, "order_ts": day, "amount": 10.0}
        for customer, days in ORDERS.items()
        for day in days
    ]
    return staged_frame(rows)


def _config(tmp_path: Path, lookback: int) -> Config:
    path = tmp_path / f"config_{lookback}.yaml"
    path.write_text(CONFIG % lookback)
    return load_config(path)


def _build(config: Config, orders: pl.DataFrame) -> tuple[dict[str, pl.DataFrame], dict]:
    """The published transition tables (conformed to their contracts) and the build's seconds."""
    models = load_models()
    con = connect()
    try:
        seconds = build_snapshot(con, config, SNAPSHOT, orders, models)
        out = {}
        for table in TABLES:
            arrow = conform(
                con.sql(f"select * from mart_{table}").to_arrow_table(), load_contract(table)
            )
            frame = pl.from_arrow(arrow)
            assert isinstance(frame, pl.DataFrame)
            out[table] = frame
        return out, seconds
    finally:
        con.close()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return _config(tmp_path_factory.mktemp("config"), 3)


@pytest.fixture(scope="module")
def built(config: Config) -> dict[str, pl.DataFrame]:
    return _build(config, _orders())[0]


def test_each_customer_gets_the_previous_days_segment_and_its_last_change(
    built: dict[str, pl.DataFrame],
) -> None:
    rows = {r["customer_id"]: r for r in built["segment_transitions"].to_dicts()}
    assert list(rows) == ["A", "B", "C", "E", "G", "N"]  # ordered
    assert {r["previous_snapshot_date"] for r in rows.values()} == {PREVIOUS}
    expected = {
        #     previous_segment, rfm_segment,   changed, segment_changed_on
        "A": ("lapsed_repeat", "active_repeat", True, SNAPSHOT),  # a change on D
        "B": ("lapsed_repeat", "lapsed_repeat", False, _day(3, 9)),  # earlier in the lookback
        "C": ("lapsed_repeat", "lapsed_repeat", False, None),  # unchanged for >= 3 days
        "E": ("active_once", "active_once", False, _day(3, 8)),  # new on 03-08 (23:59:59)
        "G": ("lapsed_repeat", "lapsed_repeat", False, None),  # changed on 03-07 = D - 3
        "N": (None, "active_once", False, SNAPSHOT),  # new on D: not "changed"
    }
    for customer, want in expected.items():
        row = rows[customer]
        got = (row["previous_segment"], row["rfm_segment"], row["changed"])
        assert (*got, row["segment_changed_on"]) == want, customer


def test_the_summary_counts_every_transition_from_the_previous_day(
    built: dict[str, pl.DataFrame],
) -> None:
    summary = built["segment_transition_summary"]
    assert summary["previous_snapshot_date"].to_list() == [PREVIOUS] * 4
    got = summary.select(
        "previous_segment", "rfm_segment", "customers", "customer_share", "revenue",
        "previous_revenue",
    ).rows()  # fmt: skip
    assert got == [
        (None, "active_once", 1, 1.0, 10.0, 0.0),  # N, new on D
        ("active_once", "active_once", 1, 1.0, 10.0, 10.0),  # E
        ("lapsed_repeat", "active_repeat", 1, 0.25, 30.0, 20.0),  # A bought on D
        ("lapsed_repeat", "lapsed_repeat", 3, 0.75, 80.0, 80.0),  # B, C, G
    ]


@pytest.mark.parametrize(
    ("lookback", "since"),
    [
        # only D - 1 is compared: the earlier changes of B and E are out of sight
        (1, {"A": SNAPSHOT, "B": None, "C": None, "E": None, "G": None, "N": SNAPSHOT}),
        # 03-07 is a change day now: G's fall from active_repeat is seen
        (
            4,
            {
                "A": SNAPSHOT,
                "B": _day(3, 9),
                "C": None,
                "E": _day(3, 8),
                "G": _day(3, 7),
                "N": SNAPSHOT,
            },
        ),
    ],
)
@pytest.mark.slow
def test_the_lookback_bounds_segment_changed_on(
    tmp_path: Path, built: dict[str, pl.DataFrame], lookback: int, since: dict
) -> None:
    tables, _ = _build(_config(tmp_path, lookback), _orders())
    transitions = tables["segment_transitions"]
    assert dict(transitions.select("customer_id", "segment_changed_on").iter_rows()) == since
    # previous_segment, changed and the summary only look at D - 1
    same = ["customer_id", "previous_snapshot_date", "previous_segment", "rfm_segment", "changed"]
    assert transitions.select(same).equals(built["segment_transitions"].select(same))
    assert tables["segment_transition_summary"].equals(built["segment_transition_summary"])


def _segments_on(config: Config, orders: pl.DataFrame, day: date) -> pl.DataFrame:
    """int_customer_rfm_segment built alone at `day` from the orders placed up to its end."""
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    con = connect()
    try:
        register_sources(con, config, orders.filter(pl.col("order_ts") < end))
        build_models(
            con, model_params(config, day), load_models(), {}, {"int_customer_rfm_segment"}
        )
        return con.sql(
            "select int_customers.customer_id, int_customer_rfm_segment.rfm_segment,"
            " int_customers.net_revenue::double as revenue from int_customers"
            " left join int_customer_rfm_segment using (customer_id)"
        ).pl()
    finally:
        con.close()


def _expected(config: Config, orders: pl.DataFrame) -> dict[str, pl.DataFrame]:
    lookback = config.rfm.transition_lookback_days
    days = [SNAPSHOT - timedelta(days=n) for n in range(lookback, -1, -1)]
    segments = {day: _segments_on(config, orders, day) for day in days}
    now, before = segments[SNAPSHOT], segments[PREVIOUS]
    last_change: dict[str, date] = {}
    for day in days[1:]:
        yesterday = dict(
            segments[day - timedelta(days=1)].select("customer_id", "rfm_segment").iter_rows()
        )
        for customer, segment in segments[day].select("customer_id", "rfm_segment").iter_rows():
            if customer not in yesterday or yesterday[customer] != segment:
                last_change[customer] = day
    previous = before.select(
        "customer_id",
        pl.col("rfm_segment").alias("previous_segment"),
        pl.col("revenue").alias("previous_revenue"),
    )
    joined = now.join(previous, on="customer_id", how="left")
    transitions = joined.select(
        "customer_id",
        pl.lit(PREVIOUS).alias("previous_snapshot_date"),
        "previous_segment",
        "rfm_segment",
        (pl.col("previous_segment").is_not_null() & (pl.col("previous_segment") != pl.col("rfm_segment")))
        .alias("changed"),
        pl.col("customer_id").replace_strict(last_change, default=None, return_dtype=pl.Date)
        .alias("segment_changed_on"),
    ).sort("customer_id")  # fmt: skip
    both = now.join(previous, on="customer_id", how="full", coalesce=True)
    summary = (
        both.group_by("previous_segment", "rfm_segment")
        .agg(
            customers=pl.len().cast(pl.Int64),
            revenue=pl.col("revenue").fill_null(0).sum(),
            previous_revenue=pl.col("previous_revenue").fill_null(0).sum(),
        )
        .with_columns(
            customer_share=pl.col("customers") / pl.col("customers").sum().over("previous_segment")
        )
    )
    return {"segment_transitions": transitions, "segment_transition_summary": summary}


@pytest.mark.parametrize("lookback", [1, 3, 4])
@pytest.mark.slow
def test_the_transitions_match_segments_built_day_by_day(tmp_path: Path, lookback: int) -> None:
    config = _config(tmp_path, lookback)
    orders = _orders()
    tables, _ = _build(config, orders)
    want = _expected(config, orders)
    transitions = tables["segment_transitions"]
    assert transitions.equals(want["segment_transitions"].select(transitions.columns))
    order = ["previous_segment", "rfm_segment"]
    got = tables["segment_transition_summary"].sort(order, nulls_last=False)
    expected = want["segment_transition_summary"].sort(order, nulls_last=False)
    assert got.drop("previous_snapshot_date").equals(expected.select(got.columns[1:]))


@pytest.mark.slow
def test_a_rebuild_gives_the_same_rows_and_the_history_is_timed(
    config: Config, built: dict[str, pl.DataFrame]
) -> None:
    again, seconds = _build(config, _orders())
    for name, frame in built.items():
        assert again[name].equals(frame), name
    assert seconds["int_customer_lookback_states"] >= 0
    assert "mart_segment_transitions" in seconds


def test_the_history_holds_each_lookback_day(config: Config) -> None:
    """Each lookback day's segments, from the one build of D, are the hand-worked ones."""
    con = connect()
    try:
        register_sources(con, config, _orders())
        build_models(
            con,
            model_params(config, SNAPSHOT),
            load_models(),
            {},
            {"int_customer_rfm_segment_daily"},
        )
        history = con.sql(
            "select as_of, customer_id, rfm_segment from int_customer_rfm_segment_daily"
        ).pl()
    finally:
        con.close()
    assert sorted(set(history["as_of"].to_list())) == [
        _day(3, 7),
        _day(3, 8),
        _day(3, 9),
        SNAPSHOT,
    ]
    for offset, day in enumerate((_day(3, 7), _day(3, 8), _day(3, 9), SNAPSHOT), start=1):
        got = dict(
            history.filter(pl.col("as_of") == day).select("customer_id", "rfm_segment").iter_rows()
        )
        want = {c: s[offset] for c, s in SEGMENTS.items() if s[offset] is not None}
        assert got == want, day


@pytest.mark.slow
def test_quantile_scored_lookback_days_equal_each_days_own_build(tmp_path: Path) -> None:
    """With the default scoring (R by quantile: ranks among that day's customers), every
    lookback day's segment and revenue from the build of D equal a build of that day alone."""
    from pipelines.tools.generate import simulate_orders

    path = tmp_path / "config.yaml"
    path.write_text("predictive:\n  enabled: false\nrfm:\n  transition_lookback_days: 4\n")
    config = load_config(path)
    generated = simulate_orders(4_000, seed=11, start=date(2024, 1, 1), days=80)
    orders = staged_frame(
        [
            {"customer_id": c, "order_ts": t, "amount": a, "status": status}
            for c, t, a, status in generated.select(
                "customer_id", "order_ts", "amount", "status"
            ).iter_rows()
        ]
    )
    snapshot = date(2024, 3, 20)
    con = connect()
    try:
        register_sources(con, config, orders, until=snapshot)
        build_models(
            con,
            model_params(config, snapshot),
            load_models(),
            {},
            {"int_customer_rfm_segment_daily", "int_customer_lookback_states"},
        )
        history = con.sql(
            "select states.as_of, states.customer_id, segments.rfm_segment,"
            " states.net_revenue::double as revenue from int_customer_lookback_states as states"
            " left join int_customer_rfm_segment_daily as segments using (as_of, customer_id)"
        ).pl()
    finally:
        con.close()
    for back in range(1, 5):
        day = snapshot - timedelta(days=back)
        own = _segments_on(config, orders, day).sort("customer_id")
        got = history.filter(pl.col("as_of") == day).drop("as_of").sort("customer_id")
        assert own.height > 1_000, day
        assert got.equals(own.select(got.columns)), day


def test_the_lookback_must_be_at_least_one_day(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rfm.transition_lookback_days must be at least 1"):
        _config(tmp_path, 0)
    assert load_config().rfm.transition_lookback_days == 7
