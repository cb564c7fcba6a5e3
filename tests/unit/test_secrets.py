"""Secrets: named connections and the HMAC key come from registered lookups, never the environment
of another process; without Airflow, a `conn:` source is a one-line error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines import secrets
from pipelines.sources import resolve
from pipelines.transform.privacy import PrivacyError, hmac_key


@pytest.fixture(autouse=True)
def no_lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(secrets, "_connections", None)
    monkeypatch.setattr(secrets, "_hmac_key", None)
    monkeypatch.delenv("CUSTVAL_HMAC_KEY", raising=False)
    yield


def test_a_connection_source_outside_airflow_is_a_clear_error() -> None:
    with pytest.raises(
        secrets.SecretError, match=r"conn:orders_db names an Airflow connection.*postgresql:// URL"
    ):
        resolve("conn:orders_db", table="shop.orders")


def test_a_registered_lookup_resolves_a_connection() -> None:
    secrets.register(
        connections=lambda conn_id: {"orders_db": "postgres://reader:pw@db:5432/shop"}[conn_id]
    )
    source = resolve("conn:orders_db", table="shop.orders")
    assert source.kind == "postgres" and source.location == "postgresql://reader:pw@db:5432/shop"
    assert (
        source.display == "conn:orders_db#shop.orders"
    )  # the URI and its password are never shown


def test_the_hmac_key_from_the_environment_then_the_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PrivacyError, match="the HMAC key is missing"):
        hmac_key("CUSTVAL_HMAC_KEY")
    secrets.register(hmac_key=lambda: "from-the-connection-0123")
    assert hmac_key("CUSTVAL_HMAC_KEY") == b"from-the-connection-0123"
    monkeypatch.setenv("CUSTVAL_HMAC_KEY", "from-the-environment-01")
    assert hmac_key("CUSTVAL_HMAC_KEY") == b"from-the-environment-01"


@pytest.mark.slow
def test_the_airflow_edge_reads_the_hmac_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.orchestration import connections

    monkeypatch.setenv(
        "AIRFLOW_CONN_CUSTVAL_HMAC", '{"conn_type": "generic", "password": "airflow-key-0123456"}'
    )
    connections.register()
    assert hmac_key("CUSTVAL_HMAC_KEY") == b"airflow-key-0123456"
