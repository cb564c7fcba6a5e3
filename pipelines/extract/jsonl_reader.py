"""JSON Lines: one object per line, values kept as text, bad lines kept with a reason.

Polars reads a clean file in one pass; a file it cannot read exactly (a malformed or
non-object line, a nested value, invalid UTF-8, blank lines) is re-read line by line.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import polars as pl

from pipelines.extract.raw import (
    INVALID_UTF8,
    LINEAGE,
    MALFORMED_RECORD,
    RawFile,
    _clean_lineage,
    _Collector,
)
from pipelines.extract.streams import (
    _count_lines,
    _decode,
    _has_surrogates,
    _iter_lines,
    _open,
    _read_all,
)


def _read_jsonl(path: Path, codec: str | None, known: list[str]) -> RawFile:
    schema = dict.fromkeys(known, pl.String)
    try:
        if codec is None:
            frame = pl.read_ndjson(path, schema=schema, ignore_errors=False)
        else:
            with _open(path, codec) as fh:
                data = _read_all(fh)
            frame = pl.read_ndjson(io.BytesIO(data), schema=schema, ignore_errors=False)
    except (OSError, EOFError, zlib.error):
        raise  # unreadable bytes: read_raw reports them
    except Exception:  # noqa: BLE001 - any other failure means: read it record by record
        frame = None
    lines = _count_lines(path, codec)[0] if frame is not None else -1
    if frame is not None and lines == frame.height:
        present = [k for k in known if frame[k].null_count() < frame.height]
        frame = frame.select(*present, *_clean_lineage(1, frame.height))  # works with none present
        return RawFile(
            path, "jsonl", frame, present, _jsonl_other_keys(path, codec, known), lines=lines
        )
    slow, blanks, present, other, lines = _read_jsonl_slow(path, codec, known)
    return RawFile(
        path, "jsonl", slow, present, other, blank_lines=blanks, fast_path=False, lines=lines
    )


def _jsonl_other_keys(
    path: Path, codec: str | None, known: list[str], sample: int = 1000
) -> list[str]:
    """Keys outside the contract seen in the first records (reported, not loaded)."""
    other: set[str] = set()
    with _open(path, codec) as fh:
        for i, line in enumerate(_iter_lines(fh)):
            if i >= sample:
                break
            obj = json.loads(line) if line.strip() else {}
            if isinstance(obj, dict):
                other.update(k for k in obj if k not in known)
    return sorted(other)


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    raise TypeError("nested value")


def _read_jsonl_slow(
    path: Path, codec: str | None, known: list[str]
) -> tuple[pl.DataFrame, int, list[str], list[str], int]:
    out = _Collector(known)
    blanks = 0
    number = 0
    seen: set[str] = set()
    other: set[str] = set()
    with _open(path, codec) as fh:
        for number, raw in enumerate(_iter_lines(fh), start=1):
            text = _decode(raw)
            if not text.strip():
                blanks += 1
                continue
            try:
                obj = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
                if not isinstance(obj, dict):
                    raise ValueError("not an object")
                row = {k: _json_text(v) for k, v in obj.items() if k in out.values}
            except (ValueError, TypeError):
                out.bad(number, MALFORMED_RECORD, text)
                continue
            if any(v is not None and _has_surrogates(v) for v in row.values()) or any(
                _has_surrogates(k) for k in obj
            ):
                out.bad(number, INVALID_UTF8, text)
                continue
            seen.update(k for k, v in row.items() if v is not None)
            other.update(k for k in obj if k not in out.values)
            out.good(number, row)
    frame = out.frame()
    present = [k for k in known if k in seen]
    lineage = [c for c in LINEAGE if c != "_source_file"]
    return frame.select(*present, *lineage), blanks, present, sorted(other), number
