"""The model inputs as arrays, with the distinct (frequency, recency, T) rows found once.

BG/NBD's likelihood and predictions depend on a customer only through (frequency, recency,
T): fitting and scoring the distinct rows with their counts (far fewer than customers) gives
the same numbers at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.predictive.fitters.base import unique_rows


@dataclass
class CustomerSummary:
    """The model inputs as arrays, with the distinct (frequency, recency, T) rows found once:
    the BG/NBD fit and every prediction work on those (far fewer than customers)."""

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray
    unique: tuple[np.ndarray, np.ndarray, np.ndarray]
    inverse: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_frame(cls, inputs: pl.DataFrame) -> CustomerSummary:
        f, r, t = (inputs[c].to_numpy().astype(np.float64) for c in ("frequency", "recency", "T"))
        m = (
            inputs["monetary_value"].to_numpy().astype(np.float64)
            if "monetary_value" in inputs.columns
            else np.zeros_like(f)
        )
        unique, inverse = unique_rows(f, r, t)
        weights = np.bincount(inverse.reshape(-1), minlength=unique[0].shape[0]).astype(np.float64)
        uf, ur, ut = unique
        return cls(f, r, t, m, (uf, ur, ut), inverse.reshape(-1), weights)

    @property
    def customers(self) -> int:
        return int(self.frequency.shape[0])

    @property
    def repeaters(self) -> int:
        return int((self.frequency > 0).sum())


def as_summary(inputs: pl.DataFrame | CustomerSummary) -> CustomerSummary:
    return inputs if isinstance(inputs, CustomerSummary) else CustomerSummary.from_frame(inputs)
