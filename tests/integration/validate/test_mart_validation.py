"""The published tables are checked against their contracts before anything is published.

A good run records the checks in its manifest; tampered table files fail naming the table, the
rule, the column and the bad values; a broken SQL model stops a run before publish, leaving
the snapshot published before exactly as it was; a run with another RFM configuration is
checked against that configuration's bins and segments.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.config import load_config
from pipelines.context import RunContext
from pipelines.engines import connect
from pipelines.errors import MartRejected
from pipelines.resources import sql_dir
from pipelines.run.pipeline import run_all
from pipelines.storage import layout, snapshots
from pipelines.validate.mart_checks import check_tables
from pipelines.validate.rules import mart_contract_for_run

TAMPERED = ("cohort_retention", "customer_rfm", "kpi_summary", "segment_transitions")


pytestmark = pytest.mark.slow


def _run(source: Path, as_of: date, warehouse: Path, config: Path | None = None) -> dict[str, Any]:
    ctx = RunContext.create(
        source=str(source),
        snapshot_date=as_of,
        warehouse=warehouse,
        config_path=str(config) if config else None,
    )
    return run_all(ctx)


@pytest.fixture(scope="module")
def published(
    generated_orders: tuple[Path, pl.DataFrame, date], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, date, dict[str, Any]]:
    """A warehouse with one good snapshot of the generated orders, and its manifest."""
    source, _, last_day = generated_orders
    warehouse = tmp_path_factory.mktemp("marts_checked") / "wh"
    return warehouse, last_day, _run(source, last_day, warehouse)


def _published_file(manifest: dict[str, Any], table: str) -> Path:
    return Path(manifest["tables"][table]["path"]) / layout.TABLE_FILE


@pytest.mark.slow
def test_a_good_run_records_every_tables_checks(published: tuple[Path, date, dict]) -> None:
    _, _, manifest = published
    checked = manifest["mart_validation"]
    assert set(checked["tables"]) == set(manifest["tables"]) and len(checked["tables"]) == 11
    for table, facts in checked["tables"].items():
        assert facts["rules"] > 0 and facts["passed"] == facts["rules"], table
        assert facts["failed"] == []
    assert (
        checked["rules"] == checked["passed"] == sum(t["rules"] for t in checked["tables"].values())
    )
    assert checked["seconds"] > 0
    assert not [w for w in manifest["warnings"] if w.startswith("table ")]


def _tampered_copies(manifest: dict[str, Any], out: Path) -> dict[str, Path]:
    """The published files of TAMPERED, each with one rule broken (written as a new file)."""
    files = {}
    for table in TAMPERED:
        frame = pl.read_parquet(_published_file(manifest, table), hive_partitioning=False)
        if table == "customer_rfm":  # three customers score above the 5 bins: first, middle, last
            row = pl.int_range(pl.len())
            frame = frame.with_columns(
                pl.when(row.is_in([0, frame.height // 2, frame.height - 1]))
                .then(6)
                .otherwise(pl.col("r_score"))
                .cast(pl.Int32)
                .alias("r_score")
            )
        elif table == "cohort_retention":  # one cell twice: the compound key is broken
            frame = pl.concat([frame, frame.head(1)])
        elif table == "kpi_summary":  # a summary of two rows
            frame = pl.concat([frame, frame])
        else:  # a segment the map does not have
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) == 0)
                .then(pl.lit("champion"))
                .otherwise(pl.col("previous_segment"))
                .alias("previous_segment")
            )
        path = out / table / layout.TABLE_FILE
        path.parent.mkdir(parents=True)
        frame.write_parquet(path)
        files[table] = path
    return files


@pytest.mark.slow
def test_tampered_tables_fail_naming_table_rule_column_and_values(
    published: tuple[Path, date, dict], tmp_path: Path
) -> None:
    _, _, manifest = published
    config = load_config(None)
    contracts = {t: mart_contract_for_run(t, config) for t in TAMPERED}
    good = {t: _published_file(manifest, t) for t in TAMPERED}
    assert check_tables(good, contracts)["passed"] == sum(
        f["rules"] for t, f in manifest["mart_validation"]["tables"].items() if t in TAMPERED
    )

    files = _tampered_copies(manifest, tmp_path)
    cohort_rows = manifest["tables"]["cohort_retention"]["rows"] + 1
    customers = manifest["tables"]["customer_rfm"]["rows"]
    with pytest.raises(MartRejected) as caught:
        check_tables(files, contracts)
    message = str(caught.value)
    assert "\n" not in message
    assert (
        "table cohort_retention: rule cohort_retention.primary_key "
        "(expect_compound_columns_to_be_unique on cohort_month+months_since_first) failed for "
        f"2 of {cohort_rows:,} rows (e.g. ("
    ) in message  # both copies of the cell
    assert (
        "table customer_rfm: rule r_score.maximum (expect_column_values_to_be_between on r_score) "
        f"failed for 3 of {customers:,} rows (e.g. 6, 6, 6)"
    ) in message
    assert "r_score.minimum" not in message
    assert (
        "table kpi_summary: rule one_row_per_snapshot (expect_table_row_count_to_equal) failed: "
        "2 rows"
    ) in message
    # three failures are named, the fourth counted
    assert "segment_transitions" not in message and "; and 1 more -- nothing published" in message


@pytest.mark.slow
def test_tables_checked_slice_by_slice_fail_the_same_way(
    published: tuple[Path, date, dict], tmp_path: Path
) -> None:
    """A table larger than a slice is validated a slice at a time (GX holds one), its key and
    row count over the whole file: the same rules fail with the same counts and samples."""
    _, _, manifest = published
    config = load_config(None)
    contracts = {t: mart_contract_for_run(t, config) for t in TAMPERED}
    good = {t: _published_file(manifest, t) for t in TAMPERED}
    rows = manifest["tables"]["customer_rfm"]["rows"]
    third = -(-rows // 3)  # three slices (each GX validation of a slice costs a second)
    assert rows > third * 2 >= 7 * 2, rows
    assert (
        check_tables(good, contracts, slice_rows=third)["passed"]
        == check_tables(good, contracts)["passed"]
    )
    files = _tampered_copies(manifest, tmp_path)
    messages = []
    for slice_rows in (None, third):
        with pytest.raises(MartRejected) as caught:
            check_tables(files, contracts, slice_rows=slice_rows)
        messages.append(str(caught.value))
    # the whole-table rules on the run's connection, held to its budget: the same answer
    opened: list[str] = []

    def budgeted() -> Any:
        resources = config.resources.model_copy(update={"memory_limit": "64MB"})
        con = connect(resources, tmp_path / "spill")
        opened.append(con.sql("select current_setting('memory_limit')").fetchall()[0][0])
        return con

    with pytest.raises(MartRejected) as caught:
        check_tables(files, contracts, slice_rows=third, engine=budgeted)
    messages.append(str(caught.value))
    assert messages[0] == messages[1] == messages[2]
    assert opened and set(opened) == {"30.5 MiB"}  # DuckDB's share of the 64MB budget


def test_a_warn_rule_becomes_a_warning(published: tuple[Path, date, dict], tmp_path: Path) -> None:
    _, _, manifest = published
    contract = mart_contract_for_run("customer_rfm", load_config(None)).with_rule_params(
        "r_score.maximum", severity="warn"
    )
    files = _tampered_copies(manifest, tmp_path)
    checked = check_tables({"customer_rfm": files["customer_rfm"]}, {"customer_rfm": contract})
    facts = checked["tables"]["customer_rfm"]
    assert facts["failed"] == ["r_score.maximum"] and facts["passed"] == facts["rules"] - 1
    assert len(checked["warnings"]) == 1
    assert checked["warnings"][0].startswith("table customer_rfm: rule r_score.maximum")


def _broken_sql(tmp_path: Path) -> Path:
    """The SQL models with a typo: customers at risk get the activity state 'at-risk'."""
    copy = tmp_path / "sql"
    shutil.copytree(sql_dir(), copy)
    model = copy / "intermediate" / "int_customer_journey_stage.sql"
    text = model.read_text()
    assert text.count("when 'at_risk' then 'at_risk'") == 1
    model.write_text(text.replace("when 'at_risk' then 'at_risk'", "when 'at_risk' then 'at-risk'"))
    return copy


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_a_broken_model_stops_the_run_and_nothing_is_published(
    published: tuple[Path, date, dict],
    generated_orders: tuple[Path, pl.DataFrame, date],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    warehouse, day, manifest = published
    source = generated_orders[0]
    at_risk = (
        pl.read_parquet(_published_file(manifest, "customer_rfm"))
        .filter(pl.col("lifecycle_stage") == "at_risk")
        .height
    )
    assert at_risk > 0
    customers = manifest["tables"]["customer_journey"]["rows"]
    version = snapshots.current_version(warehouse, day)
    assert version is not None
    before = _tree(version)
    manifest_file = layout.manifest_path(warehouse, day)
    manifest_text = manifest_file.read_text()

    broken = _broken_sql(tmp_path)
    monkeypatch.setattr("pipelines.transform.marts.sql_dir", lambda: broken)
    with pytest.raises(MartRejected) as caught:
        _run(source, day, warehouse)
    message = str(caught.value)
    assert (
        "table customer_journey: rule activity_state_accepted (expect_column_values_to_be_in_set "
        f"on activity_state) failed for {at_risk:,} of {customers:,} rows (e.g. 'at-risk'"
    ) in message
    assert message.endswith("-- nothing published; the snapshot keeps what was published before")

    # the snapshot readers see is the one published before, byte for byte
    assert snapshots.current_version(warehouse, day) == version
    assert _tree(version) == before
    assert manifest_file.read_text() == manifest_text
    versions = [p for p in snapshots.snapshot_root(warehouse, day).iterdir() if "@" in p.name]
    assert versions == [version]  # the failed run's version was never made
    failure = layout.failure_path(warehouse, day).read_text()
    assert "activity_state_accepted" in failure

    # a date never published before stays unpublished
    earlier = day - timedelta(days=1)
    with pytest.raises(MartRejected):
        _run(source, earlier, warehouse)
    assert snapshots.current_version(warehouse, earlier) is None
    assert not layout.manifest_path(warehouse, earlier).exists()
    assert not (warehouse / "marts" / "customer_journey" / f"snapshot_date={earlier}").exists()


@pytest.mark.slow
def test_the_run_is_checked_against_its_own_rfm_config(
    generated_orders: tuple[Path, pl.DataFrame, date],
    run_pipeline: Callable[..., dict],
    tmp_path: Path,
) -> None:
    """Three bins and two segments: the defaults' bounds and sets would refuse these tables."""
    source, _, day = generated_orders
    config = tmp_path / "rfm3.yaml"
    config.write_text(
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
"""
    )
    manifest = run_pipeline(source, day, config=config)
    rfm = pl.read_parquet(_published_file(manifest, "customer_rfm"))
    assert rfm["r_score"].max() == 3 and rfm["m_score"].max() == 3
    assert set(rfm["rfm_segment"]) == {"best", "rest"}
    assert set(rfm["loyalty_tier"]) == {"VIP", "Member"}
    checked = manifest["mart_validation"]
    assert checked["passed"] == checked["rules"]
