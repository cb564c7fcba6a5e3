"""Secrets a run needs but never stores: connection URIs named by id, and the HMAC key.

On the command line they come from the environment (`CUSTVAL_HMAC_KEY`) or the source URL
itself. Under Airflow, the orchestration edge registers lookups into Airflow's connections
(`pipelines/orchestration/connections.py`), so nothing else in the package imports Airflow and
no secret travels through the process environment, XCom or a manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from pipelines.errors import CustvalError

ConnectionLookup = Callable[[str], str]  # connection id -> URI
KeyLookup = Callable[[], str | None]  # -> the HMAC key, or None when there is none
# -> an object store's access_key, secret_key, session_token, region, endpoint (any may be
# missing: the AWS environment chain fills the rest), or None when there is no such source
ObjectStoreLookup = Callable[[], dict[str, str | None] | None]

_connections: ConnectionLookup | None = None
_hmac_key: KeyLookup | None = None
_object_store: ObjectStoreLookup | None = None


class SecretError(CustvalError):
    """A named connection or a key cannot be found."""


def register(
    *,
    connections: ConnectionLookup | None = None,
    hmac_key: KeyLookup | None = None,
    object_store: ObjectStoreLookup | None = None,
) -> None:
    """Where `conn:<id>` sources, the HMAC key and an s3:// warehouse's credentials are looked
    up (the Airflow edge calls this)."""
    global _connections, _hmac_key, _object_store
    if connections is not None:
        _connections = connections
    if hmac_key is not None:
        _hmac_key = hmac_key
    if object_store is not None:
        _object_store = object_store


def object_store_settings() -> dict[str, str | None] | None:
    """An s3:// warehouse's credentials and endpoint from the registered lookup (an Airflow
    connection); None: the AWS environment chain (variables, config files) decides."""
    return _object_store() if _object_store is not None else None


def connection_uri(conn_id: str) -> str:
    """The URI of a named connection (read when needed, never stored)."""
    if _connections is None:
        raise SecretError(
            f"source conn:{conn_id} names an Airflow connection, which only a run inside Airflow can read; "
            "on the command line give the postgresql:// URL"
        )
    return _connections(conn_id)


def hmac_key_text(env_var: str) -> str:
    """The HMAC key: the environment variable first, then the registered lookup; '' if neither."""
    value = os.environ.get(env_var, "")
    if not value and _hmac_key is not None:
        value = _hmac_key() or ""
    return value
