"""A published warehouse as its readers see it, on a local disk or on S3, for the tests.

The S3 side reads through pyarrow's own S3FileSystem and boto3 -- not through custval's
`pipelines/storage` -- so a test compares what custval wrote with what a reader finds.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs

NO_PREDICTIONS = "predictive:\n  enabled: false\n"


def custval(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CUSTVAL_") or k == "CUSTVAL_SCRATCH"
    }
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
        env=clean,
    )


def s3_filesystem() -> fs.S3FileSystem:
    """A reader's S3FileSystem for the test server (AWS_ENDPOINT_URL passed explicitly)."""
    endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL"])
    return fs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
    )


def s3_client() -> Any:
    """The test server's boto3 client, made once per endpoint (readers poll with it)."""
    return _s3_client(os.environ["AWS_ENDPOINT_URL"])


@functools.cache
def _s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


@dataclass
class Published:
    """`location` is what `--warehouse` is given: a directory, or s3://bucket/prefix."""

    location: str

    @property
    def kind(self) -> str:
        return "s3" if self.location.startswith("s3://") else "local"

    @property
    def _base(self) -> str:  # a pyarrow filesystem path
        if self.kind == "s3":
            return self.location.removeprefix("s3://")
        return self.location

    @property
    def fs(self) -> fs.FileSystem:
        return s3_filesystem() if self.kind == "s3" else fs.LocalFileSystem()

    def path(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != fs.FileType.NotFound

    def files(self, rel: str) -> list[str]:
        """Files under `rel`, relative to it (links followed on a local disk)."""
        infos = self.fs.get_file_info(
            fs.FileSelector(self.path(rel), recursive=True, allow_not_found=True)
        )
        base = self.path(rel)
        return sorted(i.path[len(base) + 1 :] for i in infos if i.type == fs.FileType.File)

    def read_bytes(self, rel: str) -> bytes:
        """The whole file; on S3 one GET, as a reader fetches an object (pyarrow's input stream
        asks for its size first and then reads ranges, which can straddle an overwrite of the
        object: a torn read of two versions that no single GET gives)."""
        if self.kind == "s3":
            bucket, key = self.path(rel).split("/", 1)
            return bytes(s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
        with self.fs.open_input_stream(self.path(rel)) as fh:
            return bytes(fh.read())

    def json(self, rel: str) -> Any | None:
        if not self.exists(rel):
            return None
        return json.loads(self.read_bytes(rel))

    def manifest(self, snapshot: date | str) -> dict[str, Any] | None:
        return self.json(f"runs/snapshot_date={snapshot}/manifest.json")

    def table(self, table: str, snapshot: date | str) -> pl.DataFrame:
        """A table's partition as a reader reads it: the stable path."""
        rel = f"marts/{table}/snapshot_date={snapshot}/part-0.parquet"
        with self.fs.open_input_file(self.path(rel)) as fh:
            return pl.from_arrow(pq.read_table(fh))  # type: ignore[return-value]

    def pinned_table(self, table: str, snapshot: date | str) -> pl.DataFrame:
        """A table read from the version its snapshot's manifest names (a pinned read)."""
        manifest = self.manifest(snapshot)
        assert manifest is not None, f"snapshot {snapshot} is not published"
        rel = f"_snapshots/snapshot_date={snapshot}/{manifest['version']}/marts/{table}/part-0.parquet"
        with self.fs.open_input_file(self.path(rel)) as fh:
            return pl.from_arrow(pq.read_table(fh))  # type: ignore[return-value]

    def dataset(self, table: str) -> ds.Dataset:
        """Every snapshot of a table as a hive-partitioned Arrow dataset (as BI tools read it)."""
        return ds.dataset(
            self.path(f"marts/{table}"), filesystem=self.fs, format="parquet", partitioning="hive"
        )

    def tables(self, snapshot: date | str) -> dict[str, pl.DataFrame]:
        """Every published table of a snapshot (model_fit without its timing)."""
        manifest = self.manifest(snapshot)
        assert manifest is not None
        out = {}
        for name in sorted(manifest["tables"]):
            frame = self.table(name, snapshot)
            out[name] = frame.drop("seconds") if name == "model_fit" else frame
        return out


def views_left() -> list[str]:
    """Local views left on the scratch disk (they hold landed rows): none, after any command."""
    scratch = Path(os.environ["CUSTVAL_SCRATCH"])
    return sorted(p.name for p in scratch.iterdir() if p.is_dir()) if scratch.exists() else []


def operation_boundaries(operations: list[str]) -> list[int]:
    """Each kind of file operation's first and last occurrence in a row (1-based): killing at
    the 2nd of 11 identical table copies tells nothing the 1st and the 11th do not."""
    out: set[int] = set()
    for i, name in enumerate(operations):
        before = operations[i - 1] if i else None
        after = operations[i + 1] if i + 1 < len(operations) else None
        if name != before or name != after:
            out.add(i + 1)
    return sorted(out)
