"""Where orders come from, and how a run reads them.

Three kinds of source:

- `files` -- a file, a directory or a glob holding the whole order history. Every run reads
  all of it; snapshot D is computed from that batch alone (raw zone keyed by snapshot date).
- `landing` -- a landing directory laid out by arrival date, `<dir>/date=YYYY-MM-DD/*`. The run
  for D ingests the arrivals of day D into the raw zone (append-only, keyed by ingest date).
- `postgres` -- a PostgreSQL table (`postgresql://user@host:port/db` plus `--table`), read
  incrementally by its `updated_at` watermark into the raw zone, keyed by ingest date.

For `landing` and `postgres` the snapshot is computed from the full accepted history of all
ingested batches (see `pipelines/storage/history.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pipelines import secrets
from pipelines.errors import SourceError

Kind = Literal["files", "landing", "postgres"]
KINDS: tuple[str, ...] = ("auto", "files", "landing", "postgres")
_ARRIVAL = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


@dataclass(frozen=True)
class Source:
    kind: Kind
    location: str
    table: str | None = None
    reference: str | None = None  # `conn:<id>` when the location came from an Airflow connection

    @property
    def incremental(self) -> bool:
        """Batches accumulate in the raw zone; snapshots read the whole accepted history."""
        return self.kind != "files"

    @property
    def display(self) -> str:
        """The location without any password, for logs, XCom and manifests."""
        text = self.reference or mask_password(self.location)
        return f"{text}#{self.table}" if self.table else text


def mask_password(location: str) -> str:
    parts = urlsplit(location)
    if parts.scheme.startswith("postgres") and parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return location


def arrival_dirs(root: Path) -> dict[str, Path]:
    """`date=YYYY-MM-DD` subdirectories of a landing directory, by date."""
    if not root.is_dir():
        return {}
    return {
        m.group(1): p
        for p in sorted(root.iterdir())
        if p.is_dir() and (m := _ARRIVAL.match(p.name))
    }


def connection_uri(reference: str) -> str:
    """`conn:<id>` -> the URI of that connection (looked up when needed, never stored)."""
    uri = secrets.connection_uri(reference.removeprefix("conn:"))
    return uri.replace("postgres://", "postgresql://", 1)


def resolve(location: str, kind: str = "auto", table: str | None = None) -> Source:
    """The source a run reads; `kind` 'auto' tells them apart by their shape.

    `conn:<id>` names an Airflow connection holding a PostgreSQL URI: the URI (and its
    password) is looked up each time and never written to XCom, logs or manifests.
    """
    if location.startswith("conn:"):
        reference = location
        resolved = resolve(connection_uri(location), kind, table)
        return Source(resolved.kind, resolved.location, resolved.table, reference)
    if kind not in KINDS:
        raise SourceError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}")
    is_url = location.startswith(("postgresql://", "postgres://"))
    if kind == "auto":
        if is_url:
            kind = "postgres"
        elif arrival_dirs(Path(location).expanduser()):
            kind = "landing"
        else:
            kind = "files"
    if kind == "postgres":
        if not is_url:
            raise SourceError(
                f"{location}: a PostgreSQL source is a postgresql://user@host:port/db URL"
            )
        if not table:
            raise SourceError(
                "a PostgreSQL source needs --table (the orders table or view to read)"
            )
        if not _TABLE.match(table):
            raise SourceError(f"--table {table!r} is not a plain (schema.)table name")
        return Source("postgres", location, table)
    if table:
        raise SourceError("--table is only for PostgreSQL sources")
    if kind == "landing" and not Path(location).expanduser().is_dir():
        raise SourceError(f"{location}: a landing source is a directory of date=YYYY-MM-DD folders")
    return Source(kind, location)  # type: ignore[arg-type]
