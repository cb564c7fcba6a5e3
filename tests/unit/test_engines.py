"""The build connection: reopened on its file between models only when the process holds too
much, and its tables survive every reopening."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from pipelines.engines import BuildConnection, connect, scan_parquet
from pipelines.memory import current_rss_bytes
from pipelines.transform.marts import SqlModel, build_named


def _models() -> dict[str, SqlModel]:
    one = SqlModel("int_one", Path("int_one.sql"), "select 1 as x", frozenset(), frozenset())
    two = SqlModel(
        "int_two", Path("int_two.sql"), "select x + 1 as x from int_one", frozenset(), frozenset()
    )
    return {"int_one": one, "int_two": two}


def _opener(
    path: Path, opened: list[duckdb.DuckDBPyConnection]
) -> Callable[[], duckdb.DuckDBPyConnection]:
    def open_build() -> duckdb.DuckDBPyConnection:
        opened.append(connect(database=path))
        return opened[-1]

    return open_build


def test_over_the_line_each_model_gets_a_fresh_connection_on_the_same_file(
    tmp_path: Path,
) -> None:
    opened: list[duckdb.DuckDBPyConnection] = []
    build = BuildConnection(_opener(tmp_path / "build.duckdb", opened), held_at_most=0)
    try:
        build_named(build, ["int_one", "int_two"], {}, _models())
        assert build.reopened == 2 and len(opened) == 3
        assert set(build.peak_rss_mb) == {"int_one", "int_two"}
        assert all(mb > 0 for mb in build.peak_rss_mb.values())
        assert build.con is opened[-1]
        assert build.con.sql("select x from int_two").fetchall() == [(2,)]
    finally:
        build.close()


def test_under_the_line_the_warm_connection_stays(tmp_path: Path) -> None:
    rss = current_rss_bytes()
    assert rss is not None and rss > 0
    opened: list[duckdb.DuckDBPyConnection] = []
    build = BuildConnection(_opener(tmp_path / "build.duckdb", opened), held_at_most=2**50)
    try:
        build_named(build, ["int_one", "int_two"], {}, _models())
        assert build.reopened == 0 and len(opened) == 1
    finally:
        build.close()


def test_a_plain_connection_is_never_reopened() -> None:
    con = connect()
    try:
        build_named(con, ["int_one", "int_two"], {}, _models())  # in memory: reopening loses all
        assert con.sql("select x from int_two").fetchall() == [(2,)]
    finally:
        con.close()


def test_a_scanned_path_is_read_literally_not_as_a_glob(tmp_path: Path) -> None:
    """`[1]` in a warehouse path must not match a sibling folder named `1`."""
    con = connect()
    try:
        for folder, value in (("run[1]", 1), ("run1", 2)):
            (tmp_path / folder).mkdir()
            path = str(tmp_path / folder / "x.parquet").replace("'", "''")
            con.execute(f"copy (select {value} as v) to '{path}'")
        scan_parquet(con, "scanned", [tmp_path / "run[1]" / "x.parquet"])
        assert con.sql("select v from scanned").fetchall() == [(1,)]
        scan_parquet(
            con, "two_files", [tmp_path / "run[1]" / "x.parquet", tmp_path / "run1" / "x.parquet"]
        )
        assert sorted(con.sql("select v from two_files").fetchall()) == [(1,), (2,)]
    finally:
        con.close()
