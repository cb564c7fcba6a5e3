"""PII handling: drop it, or replace it by a keyed hash (HMAC-SHA256) where a stable key is needed.

The key comes from an environment variable (default `CUSTVAL_HMAC_KEY`) or, under Airflow,
the connection `custval_hmac` (`pipelines/secrets.py`). A missing key is an error, never a
fallback to an unkeyed hash: an unkeyed SHA-256 of an e-mail address is trivially reversed
by hashing a list of addresses.

Values are normalised before hashing so the same person hashes the same way: e-mails are
trimmed and lower-cased, phone numbers keep only digits (and a leading +), names are trimmed,
lower-cased and their inner whitespace collapsed. Hashing runs in DuckDB (its SHA-256 is
vectorised), as HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), tested against Python's
`hmac` module.
"""

from __future__ import annotations

import hashlib

import polars as pl

from pipelines import secrets
from pipelines.config import Config
from pipelines.contracts import Contract
from pipelines.errors import CustvalError

_BLOCK = 64  # SHA-256 block size in bytes


class PrivacyError(CustvalError):
    """PII would be published in clear, or the HMAC key is missing."""


def hmac_key(env_var: str) -> bytes:
    value = secrets.hmac_key_text(env_var)
    if not value:
        raise PrivacyError(
            f"PII hashing is configured (privacy.hashed_columns) but the HMAC key is missing: "
            f"set the environment variable {env_var} (or the Airflow connection custval_hmac); "
            "custval never falls back to an unkeyed hash"
        )
    if len(value) < 16:
        raise PrivacyError(f"the HMAC key in {env_var} is too short (use at least 16 characters)")
    return value.encode()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    k = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
    k = k.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def normalise(column: str) -> pl.Expr:
    c = pl.col(column).str.strip_chars()
    if column == "email":
        return c.str.to_lowercase()
    if column == "phone":
        return c.str.replace_all(r"[^0-9+]", "").str.replace_all(r"(.)\+", "$1")
    return c.str.to_lowercase().str.replace_all(r"\s+", " ")


def hmac_sha256_hex(values: pl.Series, key: bytes) -> pl.Series:
    """HMAC-SHA256 (hex) of each value's UTF-8 bytes; nulls stay null."""
    import duckdb

    ipad, opad = _pads(key)
    frame = pl.DataFrame({"v": values})
    con = duckdb.connect()
    try:
        con.register("values_to_hash", frame)
        out = con.sql(
            "select sha256(($opad)::blob || unhex(sha256(($ipad)::blob || encode(v)))) as h from values_to_hash",
            params={"ipad": ipad, "opad": opad},
        ).pl()
    finally:
        con.close()
    return out["h"].alias(values.name)


def hash_pii(frame: pl.LazyFrame, config: Config, contract: Contract) -> pl.LazyFrame:
    """Drop every PII column; `<column>_hmac` holds the keyed hash for configured ones (else null).

    The `_hmac` columns always exist so the SQL models see one schema whatever the config.
    Lazy and element-wise (the hash is computed batch by batch), so it streams.
    """
    pii = contract.pii_columns
    wanted = config.privacy.hashed_columns
    unknown = [c for c in wanted if c not in pii]
    if unknown:
        raise PrivacyError(
            f"privacy.hashed_columns lists {unknown}, which the contract does not flag as PII"
        )
    names = frame.collect_schema().names()
    candidates = [c for c in wanted if c in names]
    filled = (
        frame.select(pl.col(c).is_not_null().any() for c in candidates).collect().row(0)
        if candidates
        else ()
    )
    present = [c for c, any_value in zip(candidates, filled, strict=True) if any_value]
    if present:
        key = hmac_key(config.privacy.hmac_key_env)
        frame = frame.with_columns(
            normalise(c)
            .map_batches(
                lambda values: hmac_sha256_hex(values, key),
                return_dtype=pl.String,
                is_elementwise=True,
            )
            .alias(f"{c}_hmac")
            for c in present
        )
    frame = frame.with_columns(
        [pl.lit(None, pl.String).alias(f"{c}_hmac") for c in pii if c not in present]
    )
    return frame.drop([c for c in pii if c in names])
