"""Errors a data engineer can act on: each carries a one-line message naming what went wrong."""

from __future__ import annotations


class CustvalError(Exception):
    """Base class; the CLI prints the message on one line and exits non-zero."""


class SourceError(CustvalError):
    """A source file or table cannot be read (missing, empty, truncated, wrong format)."""


class BatchRejected(CustvalError):
    """A batch-level contract rule with severity `reject` failed; nothing was published."""


class ReconciliationError(CustvalError):
    """rows_in != rows_accepted + rows_quarantined + rows_duplicate."""


class PublishError(CustvalError):
    """A table could not be published."""


class RunLockedError(CustvalError):
    """Another run is building the same snapshot."""


class MartRejected(CustvalError):
    """A built table broke a rule of its contract; nothing was published."""
