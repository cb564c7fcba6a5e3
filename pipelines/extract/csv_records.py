"""CSV/TSV record by record: recover record boundaries by hand when the fast path cannot.

Each physical line is split with Python's csv rules; a quoted field left open joins the
following lines only within `ReadOptions`' limits and only if the result is a believable
record. Every bad record is kept with its reason code and line number (RAGGED_ROW,
INVALID_UTF8, MALFORMED_RECORD, UNBALANCED_QUOTE), so a stray quote costs one line.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from pipelines.extract.raw import (
    INVALID_UTF8,
    MALFORMED_RECORD,
    RAGGED_ROW,
    UNBALANCED_QUOTE,
    ReadOptions,
    _Collector,
)
from pipelines.extract.streams import _decode, _has_surrogates, _iter_lines, _open


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
