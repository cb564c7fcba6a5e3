"""Airflow connections as custval's secrets: `conn:<id>` sources, the HMAC key, S3 credentials.

Registered into `pipelines/secrets.py` when the task adapters are imported, so the rest of the
package reads secrets without importing Airflow, and the key never passes through the process
environment.
"""

from __future__ import annotations

import os
from typing import Any

from pipelines import secrets
from pipelines.secrets import SecretError

HMAC_CONNECTION = "custval_hmac"  # its password is the key of privacy.hashed_columns
# An AWS connection (login: access key id, password: secret key; extra: region_name,
# endpoint_url) for an s3:// warehouse; without one, the worker's AWS environment is used.
AWS_CONNECTION_ENV = "CUSTVAL_AWS_CONN_ID"
AWS_CONNECTION = "aws_default"


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


def object_store() -> dict[str, str | None] | None:
    """An s3:// warehouse's credentials and endpoint from the AWS connection, if there is one."""
    from airflow.sdk import Connection

    conn_id = os.environ.get(AWS_CONNECTION_ENV) or AWS_CONNECTION
    try:
        conn = Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - no such connection: the AWS environment chain decides
        return None
    if conn is None:
        return None
    extra: dict[str, Any] = dict(getattr(conn, "extra_dejson", None) or {})
    endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get(
        "endpoint_url"
    )
    return {
        "access_key": conn.login or extra.get("aws_access_key_id"),
        "secret_key": conn.password or extra.get("aws_secret_access_key"),
        "session_token": extra.get("aws_session_token"),
        "region": extra.get("region_name"),
        "endpoint": endpoint,
    }


def register() -> None:
    secrets.register(connections=connection_uri, hmac_key=hmac_key, object_store=object_store)
