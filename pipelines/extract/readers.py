"""Read one source file into a raw frame: values exactly as written, with their line numbers.

CSV/TSV and JSON Lines are read with every column as text (no type inference); Parquet keeps
its physical types. Text files may be compressed (`.gz`, `.bz2`, `.zst`); line numbers and
line counts then refer to the decompressed text. Every frame carries lineage columns:

- `_source_file`, `_source_line`: where the record starts (1-based physical line for CSV and
  JSON Lines, the header being line 1 of a CSV; the row number for Parquet);
- `_source_lines`: how many physical lines the record spans (1 unless a quoted CSV field
  holds a line break; 1 for Parquet and database rows);
- `_read_error`: a reason code when the record could not even be split into fields
  (`RAGGED_ROW`, `INVALID_UTF8`, `MALFORMED_RECORD`, `UNBALANCED_QUOTE`), with the raw text
  in `_raw_line`.

Clean files take a fast multi-threaded path (pyarrow/Polars). A file the fast path cannot
read exactly -- a ragged line, invalid UTF-8, a malformed JSON line, a quoted field spanning
lines, a stray quote -- is re-read record by record, so each bad record is kept with its
reason and line number instead of failing the file or vanishing. Every file is reconciled
by lines, not records: physical lines = header + blank lines + lines of all records, so a
record that swallowed its neighbours cannot hide.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipelines.errors import ReconciliationError, SourceError

LINEAGE = ("_source_file", "_source_line", "_source_lines", "_read_error", "_raw_line")

# Format suffixes (the last suffix, or the one before a compression suffix).
SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
# Compression suffixes; only text formats may be compressed (Parquet compresses internally).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
TEXT_FORMATS = frozenset({"csv", "tsv", "jsonl"})
SUPPORTED_TYPES = (
    ", ".join(SUFFIXES) + "; text formats also compressed as " + ", ".join(COMPRESSIONS)
)

RAGGED_ROW = "RAGGED_ROW"
INVALID_UTF8 = "INVALID_UTF8"
MALFORMED_RECORD = "MALFORMED_RECORD"
UNBALANCED_QUOTE = "UNBALANCED_QUOTE"

_CHUNK = 1 << 24
_OTHER_DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class ReadOptions:
    """How text sources are split; the limits bound what one quoted CSV record may swallow."""

    delimiter: str = ","
    max_record_lines: int = 20
    max_record_chars: int = 20_000

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ValueError(
                f"CSV delimiter must be one character other than a quote or newline, got {self.delimiter!r}"
            )
        if self.max_record_lines < 1 or self.max_record_chars < 1:
            raise ValueError("max_record_lines and max_record_chars must be at least 1")


@dataclass
class RawFile:
    """A source file read as-is, with what is needed to reconcile it line by line."""

    path: Path
    format: str
    frame: pl.DataFrame
    columns: list[str]
    ignored_columns: list[str] = field(default_factory=list)
    blank_lines: int = 0
    fast_path: bool = True
    lines: int = 0  # physical lines incl. header and blank lines (Parquet/Arrow: rows)
    header_lines: int = 0  # 1 for CSV/TSV
    compression: str | None = None


def _split_name(path: Path | str) -> tuple[str, str | None]:
    """(format suffix, compression) of a file name: `a.csv.gz` -> (`.csv`, `gzip`)."""
    name = Path(path).name.lower()
    for suffix, codec in COMPRESSIONS.items():
        if name.endswith(suffix):
            return Path(name[: -len(suffix)]).suffix, codec
    return Path(name).suffix, None


def file_format(path: Path | str) -> str | None:
    """`csv`, `tsv`, `parquet` or `jsonl`, understanding compression suffixes; None if unsupported."""
    suffix, codec = _split_name(path)
    fmt = SUFFIXES.get(suffix)
    if fmt is None or (codec is not None and fmt not in TEXT_FORMATS):
        return None
    return fmt


def file_compression(path: Path | str) -> str | None:
    """The compression codec implied by the name (`gzip`, `bz2`, `zstd`), or None."""
    return _split_name(path)[1]


def type_suffix(path: Path | str) -> str:
    """The suffix that decides the type, as written (`.csv.gz`, `.txt`; '' if none)."""
    suffix, codec = _split_name(path)
    if codec is None:
        return suffix
    codec_suffix = next(s for s, c in COMPRESSIONS.items() if c == codec)
    return suffix + codec_suffix


def unsupported_reason(path: Path | str) -> str:
    """Why a file's type is not read, naming its suffix and the supported ones."""
    suffix = type_suffix(path)
    what = (
        f"unsupported file type {suffix!r}" if suffix else "unsupported file type: no type suffix"
    )
    return f"{what} (supported: {SUPPORTED_TYPES})"


def read_raw(path: Path, known_columns: list[str], options: ReadOptions | None = None) -> RawFile:
    """Read a CSV/TSV, Parquet or JSON Lines file; only `known_columns` are kept (others listed)."""
    options = options or ReadOptions()
    fmt = file_format(path)
    if fmt is None:
        raise SourceError(f"{path}: {unsupported_reason(path)}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from None
    if size == 0:
        raise SourceError(f"{path}: the file is empty")
    codec = file_compression(path)
    try:
        if fmt == "parquet":
            raw = _read_parquet(path, known_columns)
        elif fmt == "jsonl":
            raw = _read_jsonl(path, codec, known_columns)
        else:
            raw = _read_csv(path, fmt, codec, known_columns, options)
    except (OSError, EOFError, zlib.error) as exc:
        what = f"{codec} data" if codec else "the file"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise SourceError(f"{path}: cannot read {what} ({detail})") from None
    raw.compression = codec
    reconcile_lines(raw)
    return with_lineage(raw, str(path))


def reconcile_lines(raw: RawFile) -> None:
    """Physical lines must equal header + blank lines + the lines of every record."""
    in_records = int(raw.frame["_source_lines"].sum()) if raw.frame.height else 0
    accounted = raw.header_lines + raw.blank_lines + in_records
    if raw.lines != accounted:
        raise ReconciliationError(
            f"{raw.path}: {raw.lines} physical lines but {raw.header_lines} header + {raw.blank_lines} blank + "
            f"{in_records} in {raw.frame.height} records = {accounted}; the reader lost or double-counted lines"
        )


def with_lineage(raw: RawFile, source_name: str) -> RawFile:
    raw.frame = raw.frame.with_columns(pl.lit(source_name).alias("_source_file")).select(
        *raw.columns, *LINEAGE
    )
    return raw


def _clean_lineage(first_line: int, n: int) -> list[pl.Expr]:
    """Lineage of n single-line records numbered from `first_line`, none bad."""
    return [
        pl.int_range(first_line, first_line + n, dtype=pl.Int64).alias("_source_line"),
        pl.lit(1, pl.Int32).alias("_source_lines"),
        pl.lit(None, pl.String).alias("_read_error"),
        pl.lit(None, pl.String).alias("_raw_line"),
    ]


# --------------------------------------------------------------------------------------------
# Byte streams and physical lines


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


@contextmanager
def _open(path: Path, codec: str | None) -> Iterator[_Readable]:
    """The file's (decompressed) bytes as a stream, closed on exit."""
    stream: _Readable
    if codec is None:
        stream = path.open("rb")
    elif codec == "gzip":
        stream = gzip.open(path, "rb")
    elif codec == "bz2":
        stream = bz2.open(path, "rb")
    else:
        stream = pa.input_stream(str(path), compression=codec)
    try:
        yield stream
    finally:
        stream.close()


def _iter_lines(fh: _Readable) -> Iterator[bytes]:
    """Physical lines split on b"\\n" (kept); a last line without a newline is a line too."""
    pending: list[bytes] = []
    while chunk := fh.read(_CHUNK):
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            pending.append(chunk)
            continue
        if pending:
            pending.append(parts[0])
            parts[0] = b"".join(pending)
            pending.clear()
        last = parts.pop()
        for part in parts:
            yield part + b"\n"
        if last:
            pending.append(last)
    if pending:
        yield b"".join(pending)


def _count_lines(path: Path, codec: str | None) -> tuple[int, bytes]:
    """Physical lines (a last line without a newline counts), and the last line itself."""
    count = 0
    tail: list[bytes] = []  # bytes after the last newline seen so far
    last_complete = b""
    with _open(path, codec) as fh:
        while chunk := fh.read(_CHUNK):
            newlines = chunk.count(b"\n")
            if not newlines:
                tail.append(chunk)
                continue
            count += newlines
            end = chunk.rfind(b"\n")
            before = chunk.rfind(b"\n", 0, end)
            last_complete = (
                b"".join([*tail, chunk[: end + 1]]) if before < 0 else chunk[before + 1 : end + 1]
            )
            tail = [chunk[end + 1 :]] if end + 1 < len(chunk) else []
    if tail:
        return count + 1, b"".join(tail)
    return count, last_complete


def _decode(raw: bytes) -> str:
    """Lossless decoding: invalid bytes become surrogates (reported as INVALID_UTF8)."""
    return raw.decode("utf-8", "surrogateescape")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str) -> str:
    """Raw text for the quarantine: invalid bytes shown as \\xNN, line ending dropped."""
    return (
        text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").rstrip("\r\n")
    )


class _Collector:
    def __init__(self, keep: list[str]) -> None:
        self.values: dict[str, list[str | None]] = {k: [] for k in keep}
        self.lines: list[int] = []
        self.spans: list[int] = []
        self.errors: list[str | None] = []
        self.raw: list[str | None] = []

    def good(self, line: int, row: dict[str, str | None], span: int = 1) -> None:
        for key, col in self.values.items():
            col.append(row.get(key))
        self._lineage(line, span)

    def good_fields(
        self,
        line: int,
        fields: list[str],
        positions: list[tuple[list[str | None], int]],
        span: int = 1,
    ) -> None:
        """A split CSV record: `positions` pairs each kept column's values with its field index."""
        for col, i in positions:
            col.append(fields[i] or None)
        self._lineage(line, span)

    def _lineage(self, line: int, span: int) -> None:
        self.lines.append(line)
        self.spans.append(span)
        self.errors.append(None)
        self.raw.append(None)

    def bad(self, line: int, code: str, raw_text: str, span: int = 1) -> None:
        for col in self.values.values():
            col.append(None)
        self.lines.append(line)
        self.spans.append(span)
        self.errors.append(code)
        self.raw.append(_printable(raw_text))

    def frame(self) -> pl.DataFrame:
        data: dict[str, pl.Series] = {
            k: pl.Series(k, v, dtype=pl.String) for k, v in self.values.items()
        }
        data["_source_line"] = pl.Series("_source_line", self.lines, dtype=pl.Int64)
        data["_source_lines"] = pl.Series("_source_lines", self.spans, dtype=pl.Int32)
        data["_read_error"] = pl.Series("_read_error", self.errors, dtype=pl.String)
        data["_raw_line"] = pl.Series("_raw_line", self.raw, dtype=pl.String)
        return pl.DataFrame(data)


# --------------------------------------------------------------------------------------------
# CSV / TSV


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(
        delimiter, repr(delimiter)
    )


def _csv_header(path: Path, codec: str | None, fmt: str, delimiter: str) -> list[str]:
    with _open(path, codec) as fh:
        first = next(_iter_lines(fh), b"")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourceError(
            f"{path}: the header line is not UTF-8 text; is this really a CSV file?"
        ) from None
    header = next(csv.reader([text], delimiter=delimiter), [])
    header = [h.strip() for h in header]
    if not any(header):
        raise SourceError(f"{path}: the first line is empty; expected a CSV header")
    if len(header) == 1:
        _check_delimiter(path, fmt, delimiter, header[0])
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceError(f"{path}: the header repeats column(s) {', '.join(dupes)}")
    return header


def _check_delimiter(path: Path, fmt: str, delimiter: str, only: str) -> None:
    """A one-column header holding another delimiter means the file is split the wrong way."""
    seen = [(only.count(d), d) for d in _OTHER_DELIMITERS if d != delimiter and d in only]
    if not seen:
        return
    other = max(seen)[1]
    found = f"the header is one column ({only[:60]!r}) containing {_delimiter_name(other)}s: the file seems {_delimiter_name(other)}-delimited"
    if fmt == "tsv":
        advice = "a .tsv/.tab file is always read tab-delimited: rename it to .csv" + (
            f" and set sources.csv.delimiter: {json.dumps(other)} in the config"
            if other != ","
            else ""
        )
    else:
        advice = f"set sources.csv.delimiter: {json.dumps(other)} in the config"
    raise SourceError(f"{path}: {found}, not {_delimiter_name(delimiter)}-delimited; {advice}")


def _read_csv(
    path: Path, fmt: str, codec: str | None, known: list[str], options: ReadOptions
) -> RawFile:
    delimiter = "\t" if fmt == "tsv" else options.delimiter
    header = _csv_header(path, codec, fmt, delimiter)
    keep = [h for h in header if h in known]
    ignored = [h for h in header if h not in known]
    fast = _read_csv_fast(path, codec, header, keep, delimiter)
    if fast is not None:
        frame, lines = fast
        return RawFile(path, fmt, frame, keep, ignored, lines=lines, header_lines=1)
    frame, blanks, lines = _read_csv_slow(path, codec, header, keep, delimiter, options)
    return RawFile(
        path,
        fmt,
        frame,
        keep,
        ignored,
        blank_lines=blanks,
        fast_path=False,
        lines=lines,
        header_lines=1,
    )


def _read_csv_fast(
    path: Path, codec: str | None, header: list[str], keep: list[str], delimiter: str
) -> tuple[pl.DataFrame, int] | None:
    """pyarrow's reader, accepted only if every physical line is exactly one clean record."""
    invalid: list[int | None] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    names = [f"c{i}" for i in range(len(header))]
    try:
        with pa.input_stream(str(path), compression=codec) as source:
            table = pacsv.read_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
                parse_options=pacsv.ParseOptions(
                    delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=False
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    include_columns=[f"c{header.index(k)}" for k in keep] or names[:1],  # [] = all
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                    null_values=[""],
                ),
            )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    if invalid:
        return None
    lines, last = _count_lines(path, codec)
    if lines != table.num_rows + 1:
        return None  # a blank or multi-line record, or a quote that swallowed lines
    if table.num_rows and _ends_open(_decode(last), delimiter, in_quotes=False):
        return None  # pyarrow accepts an unterminated quote on the last line
    if not keep:  # no contract column in this file: lineage only (extract reports it)
        return pl.select(_clean_lineage(2, table.num_rows)), lines
    frame = pl.from_arrow(table.rename_columns(keep))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(_clean_lineage(2, table.num_rows)), lines


def _ends_open(line: str, delimiter: str, in_quotes: bool) -> bool:
    """Whether a physical line ends inside a quoted field, given whether it starts in one.

    Python's csv rules: a quote opens a quoted field only at the start of a field; inside,
    `""` is a literal quote and a lone quote closes the field; elsewhere a quote is literal.
    """
    i, n = 0, len(line)
    while (j := line.find('"', i)) >= 0:
        if in_quotes:
            if j + 1 < n and line[j + 1] == '"':
                i = j + 2
                continue
            in_quotes = False
        elif j == 0 or line[j - 1] == delimiter:
            in_quotes = True
        i = j + 1
    return in_quotes


class _Feed:
    """A one-text iterator for a long-lived csv.reader: hand it a record's text, read fields."""

    def __init__(self) -> None:
        self.text: str | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        text, self.text = self.text, None
        if text is None:
            raise StopIteration
        return text


class _Splitter:
    """Split one text into fields with csv rules, strictly (errors raise) or loosely."""

    def __init__(self, delimiter: str, strict: bool) -> None:
        self._feed = _Feed()
        self._reader = csv.reader(self._feed, delimiter=delimiter, strict=strict)

    def __call__(self, text: str) -> list[str]:
        self._feed.text = text  # consumed by the reader's first pull, even if it then raises
        return next(self._reader, [])


class _LineBuffer:
    """Numbered physical lines with look-ahead, so a rejected candidate resumes at its 2nd line."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self._ahead: deque[tuple[int, str]] = deque()
        self.read = 0  # physical lines read from the file so far

    def _pull(self) -> tuple[int, str] | None:
        raw = next(self._lines, None)
        if raw is None:
            return None
        self.read += 1
        return self.read, _decode(raw)

    def next(self) -> tuple[int, str] | None:
        return self._ahead.popleft() if self._ahead else self._pull()

    def peek(self, i: int) -> tuple[int, str] | None:
        """The i-th line after the last one taken (0-based), without taking it."""
        while len(self._ahead) <= i:
            got = self._pull()
            if got is None:
                return None
            self._ahead.append(got)
        return self._ahead[i]

    def skip(self, k: int) -> None:
        for _ in range(k):
            self._ahead.popleft()


def _read_csv_slow(
    path: Path,
    codec: str | None,
    header: list[str],
    keep: list[str],
    delimiter: str,
    options: ReadOptions,
) -> tuple[pl.DataFrame, int, int]:
    """Record by record over physical lines; returns the frame, blank lines and physical lines.

    A record is one line, or -- when a quoted field is still open at the end of a line -- the
    shortest run of lines that closes it, accepted only if it is within the limits, splits
    into exactly the header's fields, and none of its continuation lines would be a complete
    record on its own. Otherwise its first line alone is UNBALANCED_QUOTE and reading resumes
    at the next line, so a stray quote costs one line, never the lines after it.
    """
    width = len(header)
    strict = _Splitter(delimiter, strict=True)
    loose = _Splitter(delimiter, strict=False)
    out = _Collector(keep)
    positions = [(out.values[k], header.index(k)) for k in keep]
    blanks = 0
    with _open(path, codec) as fh:
        lines = _LineBuffer(_iter_lines(fh))
        lines.next()  # the header, already checked
        while (got := lines.next()) is not None:
            number, text = got
            try:
                fields = strict(text)  # returns only if the line is a complete record
            except csv.Error:
                fields = None
            if fields is None and _ends_open(text, delimiter, in_quotes=False):
                quoted = _quoted_record(lines, text, width, strict, loose, delimiter, options)
                if quoted is None:
                    out.bad(number, UNBALANCED_QUOTE, text)  # this line only; resume at the next
                    continue
                record, fields, span = quoted
                if not record.isascii() and _has_surrogates(record):
                    out.bad(number, INVALID_UTF8, record, span)
                else:
                    out.good_fields(number, fields, positions, span)
                continue
            if fields is None:
                out.bad(number, MALFORMED_RECORD, text)  # e.g. text after a closing quote
            elif not fields or (len(fields) == 1 and not fields[0].strip() and width > 1):
                blanks += 1
            elif len(fields) != width:
                out.bad(number, RAGGED_ROW, text)
            elif not text.isascii() and _has_surrogates(text):
                out.bad(number, INVALID_UTF8, text)  # invalid bytes can only sit inside fields
            else:
                out.good_fields(number, fields, positions)
        physical = lines.read
    return out.frame(), blanks, physical


def _quoted_record(
    lines: _LineBuffer,
    first: str,
    width: int,
    strict: _Splitter,
    loose: _Splitter,
    delimiter: str,
    options: ReadOptions,
) -> tuple[str, list[str], int] | None:
    """The record that starts with `first`, whose quoted field stays open at its end.

    Returns (text, fields, physical lines) and consumes the continuation lines, or None --
    consuming nothing -- when the candidate is not a believable record.
    """
    extra = _continuation(lines, first, delimiter, options)
    if extra is None:
        return None
    following = [got[1] for i in range(extra) if (got := lines.peek(i)) is not None]
    record = first + "".join(following)
    try:
        fields = strict(record)
    except csv.Error:
        return None
    if len(fields) != width or any(len(loose(t)) == width for t in following):
        return None  # wrong shape, or it swallowed lines that are records themselves
    lines.skip(extra)
    return record, fields, extra + 1


def _continuation(
    lines: _LineBuffer, first: str, delimiter: str, options: ReadOptions
) -> int | None:
    """How many following lines close the quoted field opened on `first` (None: not within limits)."""
    chars = len(first)
    for i in range(options.max_record_lines - 1):
        got = lines.peek(i)
        if got is None:
            return None
        chars += len(got[1])
        if chars > options.max_record_chars:
            return None
        if not _ends_open(got[1], delimiter, in_quotes=True):
            return i + 1
    return None


# --------------------------------------------------------------------------------------------
# JSON Lines


def _read_jsonl(path: Path, codec: str | None, known: list[str]) -> RawFile:
    schema = dict.fromkeys(known, pl.String)
    try:
        if codec is None:
            frame = pl.read_ndjson(path, schema=schema, ignore_errors=False)
        else:
            with _open(path, codec) as fh:
                data = b"".join(iter(lambda: fh.read(_CHUNK), b""))
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


# --------------------------------------------------------------------------------------------
# Parquet and Arrow


def _read_parquet(path: Path, known: list[str]) -> RawFile:
    try:
        schema = pq.read_schema(path)
        keep = [n for n in schema.names if n in known]
        table = pq.read_table(path, columns=keep)
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise SourceError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})"
        ) from None
    ignored = [n for n in schema.names if n not in known]
    if not keep:  # no contract column: keep the row count (extract reports the missing columns)
        return RawFile(path, "parquet", pl.select(_clean_lineage(1, rows)), [], ignored, lines=rows)
    return raw_from_arrow(table, path, "parquet", ignored)


def raw_from_arrow(table: pa.Table, path: Path, fmt: str, ignored: list[str]) -> RawFile:
    """A typed Arrow table (Parquet, a database) as a raw file: types kept, rows numbered.

    Contract columns hold plain values; a nested column (list, struct, map) is refused here
    with its name and type, rather than failing later in a cast far from the cause.
    """
    plain = []
    for f in table.schema:
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if pa.types.is_nested(typ):
            raise SourceError(
                f"{path}: column {f.name!r} has the nested type {str(typ)[:120]}; contract columns must hold "
                "plain values (text, numbers, dates, booleans): flatten it in the export"
            )
        plain.append(pa.field(f.name, typ))
    # Dictionary-encoded columns become plain values; types are otherwise kept as written.
    table = table.cast(pa.schema(plain))
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(_clean_lineage(1, table.num_rows))
    return RawFile(path, fmt, frame, list(table.column_names), ignored, lines=table.num_rows)
