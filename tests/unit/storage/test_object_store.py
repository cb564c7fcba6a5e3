"""Object-store warehouses without a server: URLs, where settings come from, local views."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.context import check_warehouse
from pipelines.errors import CustvalError
from pipelines.storage import layout, local_view
from pipelines.storage.object_store import ObjectStore, Settings, normalise_url, parse_url


@pytest.mark.parametrize(
    ("given", "bucket", "prefix"),
    [
        ("s3://my-bucket/warehouse", "my-bucket", "warehouse"),
        ("s3://my-bucket/a/b/", "my-bucket", "a/b"),
        ("s3://my-bucket", "my-bucket", ""),
        ("s3:/my-bucket/x", "my-bucket", "x"),  # what Path("s3://my-bucket/x") prints
    ],
)
def test_urls(given: str, bucket: str, prefix: str) -> None:
    assert parse_url(given) == (bucket, prefix)
    assert normalise_url(given) == f"s3://{bucket}" + (f"/{prefix}" if prefix else "")


@pytest.mark.parametrize(
    "bad", ["s3://UPPER/x", "s3://ab/x", "s3://has_underscore/x", "s3://ok-bucket/a//b", "s3://"]
)
def test_bad_urls_are_one_line_errors(bad: str) -> None:
    with pytest.raises(CustvalError) as info:
        parse_url(bad)
    assert "\n" not in str(info.value) and "s3://bucket/prefix" in str(info.value)


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> None:
    for key in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET")
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, AWS_REGION="eu-west-1", AWS_ENDPOINT_URL="http://minio:9000")
    s = Settings.resolve()
    assert (s.access_key, s.secret_key, s.region, s.endpoint) == (
        "AKID",
        "SECRET",
        "eu-west-1",
        "http://minio:9000",
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example:9443")  # the S3 one wins
    assert Settings.resolve().endpoint == "https://s3.example:9443"
    store = ObjectStore("s3://bucket-1/wh", Settings.resolve())
    fs = store.fs  # pyarrow does not read AWS_ENDPOINT_URL: it is passed explicitly
    assert fs.region == "eu-west-1"
    assert store.client.meta.endpoint_url == "https://s3.example:9443"
    assert store.key("runs/x.json") == "wh/runs/x.json"
    assert store.path("runs") == "bucket-1/wh/runs"
    assert store.url_of("marts/t") == "s3://bucket-1/wh/marts/t"


def test_settings_from_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path)
    (tmp_path / "config").write_text(
        "[default]\nregion = ap-south-1\nendpoint_url = http://from-config:9000\n"
    )
    s = Settings.resolve()
    assert (s.region, s.endpoint) == ("ap-south-1", "http://from-config:9000")


def test_settings_from_a_registered_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipelines import secrets

    _env(monkeypatch, tmp_path, AWS_ENDPOINT_URL="http://env:9000")
    given = {"access_key": "CONN", "secret_key": "CONNSECRET", "endpoint": "http://conn:9000"}
    monkeypatch.setattr(secrets, "_object_store", lambda: given)
    s = Settings.resolve()
    assert (s.access_key, s.secret_key, s.endpoint) == ("CONN", "CONNSECRET", "http://conn:9000")


def test_a_view_knows_its_store_and_translates_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(layout.SCRATCH_ENV, str(tmp_path / "scratch"))
    view = check_warehouse("s3://my-bucket/wh", view="run-1")
    assert view == (tmp_path / "scratch" / "run-1").resolve()
    assert json.loads((view / layout.VIEW_MARKER).read_text()) == {"warehouse": "s3://my-bucket/wh"}
    assert (view.stat().st_mode & 0o777) == 0o700  # landed rows, PII
    local_view._views.clear()  # another process: found through the marker
    store = local_view.remote_of(view)
    assert store is not None and store.url == "s3://my-bucket/wh"
    assert local_view.remote_of(tmp_path) is None  # a local warehouse
    record = {"path": f"{view}/marts/t/snapshot_date=2024-01-01", "n": 1, "l": [str(view)]}
    published = local_view.published_form(view, record)
    assert published == {
        "path": "s3://my-bucket/wh/marts/t/snapshot_date=2024-01-01",
        "n": 1,
        "l": ["s3://my-bucket/wh"],
    }
    assert local_view.local_form(view, published) == record
    assert local_view.published_form(tmp_path, record) is record  # a local warehouse
    local_view.close(view)
    assert not view.exists()
