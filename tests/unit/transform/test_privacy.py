"""PII: dropped or keyed-hashed; the DuckDB HMAC equals Python's hmac; no key, no hash."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
import pytest

from pipelines.config import load_config
from pipelines.contracts import load_contract
from pipelines.transform.privacy import PrivacyError, hash_pii, hmac_sha256_hex, normalise

KEY = "k" * 20


@pytest.mark.parametrize(
    "key", [b"short-key-16byte", b"x" * 64, b"y" * 100]
)  # < block, = block, > block
def test_hmac_matches_python(key: bytes) -> None:
    values = ["a@b.c", "Ünïcödé@example.com", "", "x" * 500]
    out = hmac_sha256_hex(pl.Series("v", values + [None]), key).to_list()
    expected = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest() for v in values]
    assert out == expected + [None]


def test_normalisation() -> None:
    f = pl.DataFrame(
        {
            "email": ["  Foo@Example.COM "],
            "phone": ["+49 (30) 123-45"],
            "name": ["  Ada   LOVELACE "],
        }
    )
    out = f.select(normalise("email"), normalise("phone"), normalise("name")).row(0)
    assert out == ("foo@example.com", "+493012345", "ada lovelace")


def _orders() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "order_id": ["O1", "O2"],
            "email": [" A@B.C", "a@b.c "],
            "phone": ["1", None],
            "name": ["x", "y"],
        }
    )


def test_pii_is_dropped_by_default() -> None:
    out = hash_pii(_orders(), load_config(), load_contract("orders")).collect()
    assert set(out.columns) == {"order_id", "email_hmac", "phone_hmac", "name_hmac"}
    assert out["email_hmac"].null_count() == 2


def test_hashed_columns_need_the_key(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("privacy:\n  hashed_columns: [email]\n")
    monkeypatch.delenv("CUSTVAL_HMAC_KEY", raising=False)
    with pytest.raises(
        PrivacyError, match="HMAC key is missing: set the environment variable CUSTVAL_HMAC_KEY"
    ):
        hash_pii(_orders(), load_config(cfg), load_contract("orders"))
    monkeypatch.setenv("CUSTVAL_HMAC_KEY", KEY)
    out = hash_pii(_orders(), load_config(cfg), load_contract("orders")).collect(engine="streaming")
    expected = hmac.new(KEY.encode(), b"a@b.c", hashlib.sha256).hexdigest()
    assert out["email_hmac"].to_list() == [expected, expected]  # same person after normalisation
    assert "email" not in out.columns


def test_only_pii_columns_can_be_hashed(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("privacy:\n  hashed_columns: [customer_id]\n")
    with pytest.raises(PrivacyError, match="does not flag as PII"):
        hash_pii(_orders(), load_config(cfg), load_contract("orders"))
