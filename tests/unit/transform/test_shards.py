"""The shard assignment is pinned: md5 of the id's bytes, computed independently here."""

from __future__ import annotations

import hashlib
import random
import string

import duckdb
import pytest

from pipelines.transform.shards import shard_of, shard_sql


def _independent(customer_id: str, shards: int) -> int:
    """The issue's definition, written out again: 64 leading bits of MD5, big-endian, mod K."""
    hexdigest = hashlib.md5(customer_id.encode("utf-8")).hexdigest()
    return int(hexdigest[:16], 16) % shards


def _ids(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-_ éüßØ中"
    fixed = ["C000001", "C000123", "", "customer with spaces", "ÉMILE-Ø", "中文客户"]
    return fixed + ["".join(rng.choices(alphabet, k=rng.randint(1, 24))) for _ in range(n)]


@pytest.mark.parametrize("shards", [1, 2, 3, 8, 97])
def test_python_assignment_is_md5_of_the_id_bytes(shards: int) -> None:
    for customer_id in _ids(500):
        assert shard_of(customer_id, shards) == _independent(customer_id, shards)


@pytest.mark.parametrize("shards", [1, 3, 8])
def test_duckdb_expression_matches_the_python_definition(shards: int) -> None:
    ids = _ids(2000)
    con = duckdb.connect()
    con.execute("create table ids (customer_id varchar)")
    con.executemany("insert into ids values (?)", [(i,) for i in ids])
    rows = con.sql(f"select customer_id, {shard_sql('customer_id', shards)} from ids").fetchall()
    assert len(rows) == len(ids)
    for customer_id, shard in rows:
        assert shard == _independent(customer_id, shards)


def test_one_shard_holds_everyone_and_buckets_are_used() -> None:
    ids = _ids(3000)
    assert {shard_of(i, 1) for i in ids} == {0}
    counts = [0] * 8
    for i in ids:
        counts[shard_of(i, 8)] += 1
    assert all(c > 0 for c in counts)  # a constant function would also pass the pins above


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_a_shard_count_is_a_positive_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        shard_of("C1", bad)  # type: ignore[arg-type]
