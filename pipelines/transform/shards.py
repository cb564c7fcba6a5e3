"""Which shard a customer lives in: a version-stable hash of the customer id, mod K.

bucket(customer_id) = the first 8 bytes of MD5(the id's UTF-8 bytes), read as a big-endian
unsigned 64-bit integer, mod K. MD5 is the standard digest, so the assignment is the same in
every Python, DuckDB and Polars version and on every worker (DuckDB's and Polars' `hash()` are
not: they change between versions, and a persisted assignment must not). Every order of a
customer goes to the same shard, so a customer lives in exactly one.

`shard_of` is the definition (hashlib); `shard_sql` is the same function as a DuckDB
expression, for splitting and filtering tables where they are (DuckDB's `md5()` is standard
MD5 of the string's UTF-8 bytes).
"""

from __future__ import annotations

import hashlib

HASH_BYTES = 8  # the digest's leading bytes read as the bucket number (64 bits)


def check_shards(shards: int) -> int:
    """A shard count is a positive integer; 1 is the unsharded run."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"the number of shards must be a positive integer, not {shards!r}")
    return shards


def shard_of(customer_id: str, shards: int) -> int:
    """The shard (0 … shards-1) of one customer id."""
    digest = hashlib.md5(customer_id.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:HASH_BYTES], "big") % check_shards(shards)


def shard_sql(column: str, shards: int) -> str:
    """`shard_of(column, shards)` as a DuckDB expression over a VARCHAR column (or SQL expression)."""
    hex_digits = 2 * HASH_BYTES
    return (
        f"(('0x' || md5(({column})::varchar)[1:{hex_digits}])::ubigint "
        f"% {check_shards(shards)})::integer"
    )
