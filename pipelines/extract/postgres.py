"""PostgreSQL extract: Arrow-native (ADBC), one REPEATABLE READ READ ONLY transaction, incremental.

Each extract reads the rows whose `updated_at` lies in (low, high]: `low` is the watermark
of the previous batch (none for the first, full load) and `high` is the server's clock at
the start of the transaction minus a small lag, so a transaction that committed a moment
late with an earlier `updated_at` is still caught by the next extract. Both bounds are
stored with the landed batch (`raw/orders/ingest_date=D/_ingest.json`): the watermark lives
in the warehouse, beside the data it describes, and moves only when a batch lands.

Use a role that can only read (see the README); the transaction is READ ONLY as well. A
dropped connection is retried with backoff; when every attempt fails the run stops with
nothing landed and the watermark unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from pipelines.errors import SourceError
from pipelines.sources import mask_password

WATERMARK = "updated_at"
APPLICATION_NAME = "custval-extract"


@dataclass
class Extract:
    table: pa.Table
    low: datetime | None
    high: datetime
    null_watermark_rows: int


def _uri(uri: str) -> str:
    """The URI with an application_name, so DBAs can see (and tests can find) the session."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    query.setdefault("application_name", APPLICATION_NAME)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _quote(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


def _plain(table: pa.Table) -> pa.Table:
    """Extension columns (PostgreSQL numeric arrives as opaque text) become their storage type."""
    columns = []
    for col in table.columns:
        if isinstance(col.type, pa.BaseExtensionType):
            col = pa.chunked_array(
                [chunk.storage for chunk in col.chunks], type=col.type.storage_type
            )
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _read(
    uri: str, table: str, columns: list[str], low: datetime | None, lag_seconds: float
) -> Extract:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(_uri(uri), autocommit=False) as conn:
        cur = conn.cursor()
        try:
            cur.execute("set transaction isolation level repeatable read, read only")
            cur.execute(
                "select now() - make_interval(secs => $1::double precision)",
                parameters=(lag_seconds,),
            )
            high = cur.fetchall()[0][0]
            cur.execute(f"select * from {_quote(table)} limit 0")
            present = [d[0] for d in cur.description or []]
            if WATERMARK not in present:
                raise SourceError(
                    f"table {table} has no {WATERMARK} column; incremental extraction needs one"
                )
            wanted = [c for c in columns if c in present]
            select = ", ".join(_quote(c) for c in wanted)
            order = f"order by {_quote(WATERMARK)}" + (
                ', "order_id"' if "order_id" in wanted else ""
            )
            if low is None:  # full load: rows without a watermark are included once, and counted
                cur.execute(
                    f"select {select} from {_quote(table)} where {_quote(WATERMARK)} <= $1::timestamptz "
                    f"or {_quote(WATERMARK)} is null {order}",
                    parameters=(high,),
                )
            else:
                cur.execute(
                    f"select {select} from {_quote(table)} where {_quote(WATERMARK)} > $1::timestamptz "
                    f"and {_quote(WATERMARK)} <= $2::timestamptz {order}",
                    parameters=(low, high),
                )
            data = _plain(cur.fetch_arrow_table())
            cur.execute(f"select count(*) from {_quote(table)} where {_quote(WATERMARK)} is null")
            nulls = int(cur.fetchall()[0][0])
        finally:
            cur.close()
            conn.rollback()
    return Extract(data, low, high, nulls)


def extract(
    uri: str,
    table: str,
    columns: list[str],
    low: datetime | None,
    *,
    lag_seconds: float = 60.0,
    retries: int = 2,
    backoff_seconds: float = 2.0,
) -> Extract:
    """Rows of `table` changed since `low` (all rows when None), retried on connection loss."""
    import adbc_driver_manager

    where = f"{mask_password(uri)} table {table}"
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return _read(uri, table, columns, low, lag_seconds)
        except SourceError:
            raise
        except adbc_driver_manager.ProgrammingError as exc:  # a bad query: retrying will not help
            raise SourceError(f"{where}: {_first_line(exc)}") from None
        except (adbc_driver_manager.Error, OSError) as exc:
            last = exc
            if attempt < retries:
                time.sleep(backoff_seconds * 2**attempt)
    raise SourceError(
        f"{where}: extract failed after {retries + 1} attempts ({_first_line(last)}); "
        "nothing was landed and the watermark is unchanged"
    )


def _first_line(exc: Any) -> str:
    return str(exc).strip().splitlines()[0][:300] if exc else "unknown error"
