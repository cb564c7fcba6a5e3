"""Airflow connections as custval's secrets: `conn:<id>` sources and the HMAC key.

Registered into `pipelines/secrets.py` when the task adapters are imported, so the rest of the
package reads secrets without importing Airflow, and the key never passes through the process
environment.
"""

from __future__ import annotations

from pipelines import secrets
from pipelines.secrets import SecretError

HMAC_CONNECTION = "custval_hmac"  # its password is the key of privacy.hashed_columns


def connection_uri(conn_id: str) -> str:
    from airflow.sdk import Connection

    try:
        return str(Connection.get(conn_id).get_uri())
    except Exception as exc:  # noqa: BLE001 - any lookup failure is the same problem for the user
        raise SecretError(f"cannot read the Airflow connection {conn_id!r}: {exc}") from None


def hmac_key() -> str | None:
    from airflow.sdk import Connection

    try:
        conn = Connection.get(HMAC_CONNECTION)
    except Exception:  # noqa: BLE001 - no such connection: the stage reports the missing key
        return None
    return conn.password if conn is not None else None


def register() -> None:
    secrets.register(connections=connection_uri, hmac_key=hmac_key)
