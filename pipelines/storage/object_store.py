"""A warehouse on S3-compatible object storage: `s3://bucket/prefix`, and the calls made there.

Two clients, one set of credentials:

- `pyarrow.fs.S3FileSystem` moves the data -- listings, uploads, downloads, server-side copies,
  deletes -- the same `pyarrow.fs` interface `files.py` uses for the local disk, and the one
  Arrow datasets read the published tables through;
- boto3 makes the one call `pyarrow.fs` does not have: a **conditional put** (`If-None-Match:
  *` to create, `If-Match: <etag>` to replace exactly the version read), and reads that return
  an object's ETag. Snapshot commits (`object_snapshots.py`) and leases (`object_leases.py`) are
  built on it: of two writers racing on one object, exactly one wins.

Where the settings come from, as any AWS tool reads them: `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`), `AWS_REGION` (or `AWS_DEFAULT_REGION`), the AWS
config and credentials files (`AWS_PROFILE`), and, for an S3-compatible server (MinIO, Ceph,
moto), `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (or `endpoint_url` in the config file).
boto3 resolves them once; the same credentials, region and endpoint are handed to
`S3FileSystem` explicitly, since it does not read `AWS_ENDPOINT_URL` itself. Under Airflow an
AWS connection can supply them instead (`pipelines/orchestration/connections.py`, through
`pipelines/secrets.py`). A custom endpoint is addressed path-style (`http://host:9000/bucket/key`),
which every S3-compatible server understands.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from pyarrow import fs

from pipelines import secrets
from pipelines.errors import CustvalError

SCHEME = "s3"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectStoreError(CustvalError):
    """The object store refused a call or cannot be reached (one line: what and where)."""


@dataclass(frozen=True)
class Entry:
    """One object of a listing: its key relative to the listed prefix, size and mtime."""

    rel: str
    size: int
    mtime: datetime | None


def is_object_url(text: str) -> bool:
    return str(text).startswith(f"{SCHEME}:/")


def normalise_url(text: str) -> str:
    """`s3://bucket/prefix` without a trailing slash; `s3:/bucket/x` (a Path's spelling) mended."""
    text = str(text).strip()
    rest = text[len(SCHEME) + 1 :].lstrip("/")
    return f"{SCHEME}://{rest}".rstrip("/")


def parse_url(text: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`; a one-line error for anything else."""
    url = normalise_url(text)
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ObjectStoreError(
            f"warehouse {text}: {bucket!r} is not a valid bucket name (3-63 lower-case letters, "
            "digits, dots and hyphens); expected s3://bucket/prefix"
        )
    if parts.query or parts.fragment or any(p in ("", ".", "..") for p in prefix.split("/")[1:]):
        raise ObjectStoreError(f"warehouse {text}: expected s3://bucket/prefix")
    return bucket, prefix


@dataclass(frozen=True)
class Settings:
    """What reaching the store takes: credentials, region, endpoint (None: AWS itself)."""

    access_key: str | None
    secret_key: str | None
    session_token: str | None
    region: str | None
    endpoint: str | None

    @classmethod
    def resolve(cls) -> Settings:
        """From a registered lookup (an Airflow connection), else the AWS environment chain."""
        given = secrets.object_store_settings() or {}
        session = _boto3().Session(
            aws_access_key_id=given.get("access_key") or None,
            aws_secret_access_key=given.get("secret_key") or None,
            aws_session_token=given.get("session_token") or None,
            region_name=given.get("region") or None,
        )
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
        endpoint = (
            given.get("endpoint")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or _config_file_endpoint(session)
            or None
        )
        return cls(
            access_key=frozen.access_key if frozen else None,
            secret_key=frozen.secret_key if frozen else None,
            session_token=frozen.token if frozen else None,
            region=(
                given.get("region")
                or os.environ.get("AWS_REGION")  # the SDKs' newer name; boto3 reads the older
                or session.region_name  # AWS_DEFAULT_REGION, the config file
                or "us-east-1"
            ),
            endpoint=endpoint,
        )


def _config_file_endpoint(session: Any) -> str | None:
    """`endpoint_url` from the AWS config file's profile (services or top level), if any."""
    try:
        config = session._session.get_scoped_config()  # botocore: the profile's settings
    except Exception:  # noqa: BLE001 - a profile that cannot be read has no endpoint
        return None
    s3 = config.get("s3")
    if isinstance(s3, dict) and s3.get("endpoint_url"):
        return str(s3["endpoint_url"])
    value = config.get("endpoint_url")
    return str(value) if value else None


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise ObjectStoreError(
            "an s3:// warehouse needs boto3, which custval's s3 extra installs: pip install boto3 "
            "(or install custval with its s3 extra)"
        ) from None
    return boto3


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class ObjectStore:
    """The warehouse at `s3://bucket/prefix`: keys are paths relative to the prefix."""

    def __init__(self, url: str, settings: Settings | None = None) -> None:
        self.url = normalise_url(url)
        self.bucket, self.prefix = parse_url(url)
        self._settings = settings

    def __repr__(self) -> str:
        return f"ObjectStore({self.url})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectStore) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    # -- clients ------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> Settings:
        return self._settings or Settings.resolve()

    @cached_property
    def fs(self) -> fs.S3FileSystem:
        """pyarrow's S3 filesystem, configured explicitly (it ignores AWS_ENDPOINT_URL)."""
        s = self.settings
        options: dict[str, Any] = {"region": s.region}
        if s.access_key and s.secret_key:
            options |= {"access_key": s.access_key, "secret_key": s.secret_key}
            if s.session_token:
                options["session_token"] = s.session_token
        if s.endpoint:
            parts = urlsplit(s.endpoint if "://" in s.endpoint else f"https://{s.endpoint}")
            options |= {"endpoint_override": parts.netloc, "scheme": parts.scheme or "https"}
        return fs.S3FileSystem(**options)

    @cached_property
    def client(self) -> Any:
        """boto3's S3 client, for conditional puts and ETag reads."""
        boto3 = _boto3()
        from botocore.config import Config

        s = self.settings
        config = Config(
            s3={"addressing_style": "path"} if s.endpoint else {},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        return boto3.client(
            "s3",
            aws_access_key_id=s.access_key,
            aws_secret_access_key=s.secret_key,
            aws_session_token=s.session_token,
            region_name=s.region,
            endpoint_url=s.endpoint,
            config=config,
        )

    # -- names --------------------------------------------------------------------------------

    def key(self, rel: str | PurePosixPath) -> str:
        """The object key of a warehouse-relative path."""
        rel = str(rel).strip("/")
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def path(self, rel: str | PurePosixPath) -> str:
        """The `pyarrow.fs` path (`bucket/key`) of a warehouse-relative path."""
        return f"{self.bucket}/{self.key(rel)}".rstrip("/")

    def url_of(self, rel: str | PurePosixPath) -> str:
        rel = str(rel).strip("/")
        return f"{self.url}/{rel}" if rel else self.url

    def _fail(self, what: str, rel: str | PurePosixPath, exc: BaseException) -> ObjectStoreError:
        text = " ".join(str(exc).split())[:300]
        return ObjectStoreError(f"{what} {self.url_of(rel)} failed: {text}")

    # -- whole objects, with ETags (boto3) ---------------------------------------------------

    def get(self, rel: str | PurePosixPath) -> tuple[bytes, str] | None:
        """(body, ETag) of an object, or None when there is none."""
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.key(rel))
            return got["Body"].read(), str(got["ETag"])
        except Exception as exc:  # noqa: BLE001 - botocore's errors are generated classes
            if _error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._fail("reading", rel, exc) from None

    def put(
        self,
        rel: str | PurePosixPath,
        body: bytes,
        *,
        if_match: str | None = None,
        if_absent: bool = False,
        content_type: str | None = None,
    ) -> str | None:
        """Write an object whole; its new ETag. Conditional: None when the condition failed
        (`if_absent`: it exists; `if_match`: it changed or is gone)."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(rel), "Body": body}
        if if_absent:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        if content_type:
            args["ContentType"] = content_type
        try:
            return str(self.client.put_object(**args)["ETag"])
        except Exception as exc:  # noqa: BLE001
            code = _error_code(exc)
            if (if_absent or if_match is not None) and code in (
                "PreconditionFailed",
                "412",
                "ConditionalRequestConflict",
                "409",
                "NoSuchKey",
            ):
                return None
            raise self._fail("writing", rel, exc) from None

    def delete(self, rel: str | PurePosixPath, *, if_match: str | None = None) -> bool:
        """Delete an object (only the version read, with `if_match`); False if that failed."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(rel)}
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            self.client.delete_object(**args)
            return True
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                return False
            raise self._fail("deleting", rel, exc) from None

    def get_json(self, rel: str | PurePosixPath) -> tuple[Any, str] | None:
        """(value, ETag) of a JSON object; None when absent or not JSON."""
        got = self.get(rel)
        if got is None:
            return None
        try:
            return json.loads(got[0].decode("utf-8")), got[1]
        except (UnicodeDecodeError, ValueError):
            return None

    def read_json(self, rel: str | PurePosixPath) -> Any | None:
        got = self.get_json(rel)
        return None if got is None else got[0]

    def write_json(self, rel: str | PurePosixPath, data: Any) -> str | None:
        body = (json.dumps(data, indent=2, default=str) + "\n").encode()
        return self.put(rel, body, content_type="application/json")

    # -- many objects (pyarrow.fs) -----------------------------------------------------------

    def exists(self, rel: str | PurePosixPath) -> bool:
        try:
            return self.fs.get_file_info(self.path(rel)).type == fs.FileType.File
        except OSError as exc:
            raise self._fail("looking up", rel, exc) from None

    def listing(self, rel: str | PurePosixPath = "", *, recursive: bool = True) -> list[Entry]:
        """Objects under a prefix (files only), relative to it, sorted; [] when none."""
        base = self.path(rel)
        try:
            infos = self.fs.get_file_info(
                fs.FileSelector(base, recursive=recursive, allow_not_found=True)
            )
        except OSError as exc:
            raise self._fail("listing", rel, exc) from None
        out = [
            Entry(info.path[len(base) + 1 :], int(info.size or 0), info.mtime)
            for info in infos
            if info.type == fs.FileType.File
        ]
        return sorted(out, key=lambda e: e.rel)

    def upload(self, local: Path, rel: str | PurePosixPath) -> None:
        try:
            fs.copy_files(str(local), self.path(rel), fs.LocalFileSystem(), self.fs)
        except OSError as exc:
            raise self._fail("uploading to", rel, exc) from None

    def download(self, rel: str | PurePosixPath, local: Path) -> None:
        """Copy an object to a local file (whole: a temp file renamed)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.download")
        try:
            fs.copy_files(self.path(rel), str(tmp), self.fs, fs.LocalFileSystem())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._fail("downloading", rel, exc) from None
        os.replace(tmp, local)

    def copy(self, source: str | PurePosixPath, dest: str | PurePosixPath) -> None:
        """A server-side copy: the destination object is replaced whole."""
        try:
            self.fs.copy_file(self.path(source), self.path(dest))
        except OSError as exc:
            raise self._fail("copying to", dest, exc) from None

    def remove(self, rel: str | PurePosixPath) -> None:
        """Delete one object; nothing there is fine. (boto3: pyarrow's delete_file leaves a
        directory marker object behind when a "directory" becomes empty.)"""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(rel))
        except Exception as exc:  # noqa: BLE001
            if _error_code(exc) not in ("NoSuchKey", "404"):
                raise self._fail("deleting", rel, exc) from None

    def remove_tree(self, rel: str | PurePosixPath) -> None:
        """Delete every object under a prefix (directory markers too); nothing there is fine."""
        prefix = self.key(rel) + "/"
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                    )
        except Exception as exc:  # noqa: BLE001
            raise self._fail("deleting", rel, exc) from None

    def walk_dirs(self, rel: str | PurePosixPath) -> Iterator[str]:
        """Names of the "directories" directly under a prefix."""
        base = self.path(rel)
        try:
            infos = self.fs.get_file_info(fs.FileSelector(base, allow_not_found=True))
        except OSError as exc:
            raise self._fail("listing", rel, exc) from None
        for info in infos:
            if info.type == fs.FileType.Directory:
                yield PurePosixPath(info.path).name
