"""BG/NBD parameters, including the limits on the boundary of the parameter space.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way"; the limits (NBD:
Ehrenberg 1959, Morrison & Schmittlein 1988; BG/Poisson; Poisson) are described in
``bg_limits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

import numpy as np


@dataclass(frozen=True)
class BetaGeoParams:
    """r, alpha, a, b; limits on the boundary are spelled with 0 and inf (see ``limit``).

    No dropout (p ~ point mass at 0, the NBD limit): a = 0, b = inf. No purchase-rate
    heterogeneity (lambda = r/alpha for everyone): r = alpha = inf and ``r_over_alpha`` set.
    No dropout heterogeneity (p = ``dropout`` for everyone): a = b = inf and ``dropout`` set.
    ``r_over_alpha`` / ``dropout`` are given only then; otherwise every parameter is finite
    and positive.
    """

    r: float
    alpha: float
    a: float
    b: float
    r_over_alpha: float | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        checked = {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}
        if self.dropout is not None:
            if not (math.isinf(self.a) and math.isinf(self.b)) or self.r_over_alpha is not None:
                raise ValueError("dropout is only given in the limit a = b = inf (r, alpha finite)")
            if not 0.0 < self.dropout < 1.0:
                raise ValueError(f"BG/NBD dropout must lie in (0, 1), got {self.dropout}")
            checked = {"r": self.r, "alpha": self.alpha}
        if self.r_over_alpha is not None:
            if not (math.isinf(self.r) and math.isinf(self.alpha)):
                raise ValueError("r_over_alpha is only given in the limit r = alpha = inf")
            checked = {"r_over_alpha": self.r_over_alpha, "a": self.a, "b": self.b}
        if self.no_dropout:
            checked = {k: v for k, v in checked.items() if k not in ("a", "b")}
        for name, value in checked.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"BG/NBD parameter {name} must be positive and finite, got {value}"
                )

    @classmethod
    def nbd(cls, r: float, alpha: float) -> Self:
        """The no-dropout limit a/(a+b) -> 0 (written a = 0, b = inf)."""
        return cls(float(r), float(alpha), 0.0, math.inf)

    @classmethod
    def bg_poisson(cls, rate: float, a: float, b: float) -> Self:
        """The no-rate-heterogeneity limit r, alpha -> inf with r/alpha = ``rate``."""
        return cls(math.inf, math.inf, float(a), float(b), float(rate))

    @classmethod
    def poisson(cls, rate: float) -> Self:
        """Both limits: everyone buys at ``rate`` and nobody drops out."""
        return cls(math.inf, math.inf, 0.0, math.inf, float(rate))

    @classmethod
    def fixed_dropout(cls, r: float, alpha: float, p: float) -> Self:
        """The no-dropout-heterogeneity limit a, b -> inf with a/(a+b) = ``p``."""
        return cls(float(r), float(alpha), math.inf, math.inf, dropout=float(p))

    @property
    def no_dropout(self) -> bool:
        return self.a == 0.0 and math.isinf(self.b)

    @property
    def limit(self) -> str | None:
        """None (interior), "nbd", "bg_poisson", "poisson" or "fixed_dropout"."""
        if self.dropout is not None:
            return "fixed_dropout"
        if self.r_over_alpha is not None:
            return "poisson" if self.no_dropout else "bg_poisson"
        return "nbd" if self.no_dropout else None

    def limit_values(self) -> dict[str, float]:
        """The limit model's own parameters (see ``bg_limits.LimitFit.values``)."""
        if self.limit == "nbd":
            return {"r": self.r, "alpha": self.alpha}
        if self.dropout is not None:
            return {"r": self.r, "alpha": self.alpha, "p": self.dropout}
        return {"rate": float(self.r_over_alpha or 0.0), "a": self.a, "b": self.b}

    @classmethod
    def from_limit(cls, kind: str, values: dict[str, float], time_scale: float = 1.0) -> Self:
        """Parameters of a ``bg_limits`` limit fitted on time divided by ``time_scale``."""
        if kind == "nbd":
            return cls.nbd(values["r"], values["alpha"] * time_scale)
        if kind == "bg_poisson":
            return cls.bg_poisson(values["rate"] / time_scale, values["a"], values["b"])
        if kind == "poisson":
            return cls.poisson(values["rate"] / time_scale)
        if kind == "fixed_dropout":
            return cls.fixed_dropout(values["r"], values["alpha"] * time_scale, values["p"])
        raise ValueError(f"unknown BG/NBD limit {kind!r}")

    @property
    def at_limit(self) -> list[str]:
        """Names of the parameters sitting at a limit value (0 or inf)."""
        names = ["r", "alpha"] if self.r_over_alpha is not None else []
        return names + (["a", "b"] if self.no_dropout or self.dropout is not None else [])

    @property
    def boundary_note(self) -> str | None:
        """The human note ``FitResult.boundary`` carries for a limit (None when interior)."""
        rate = self.r_over_alpha
        if self.limit == "nbd":
            return (
                "no dropout signal: a/(a+b) -> 0 (written a = 0, b = inf); fitted the NBD limit "
                f"(r = {self.r:.6g}, alpha = {self.alpha:.6g}): nobody drops out, p_alive = 1, "
                "expected purchases t (r + x) / (alpha + T)"
            )
        if self.limit == "bg_poisson":
            return (
                "no purchase-rate heterogeneity between customers: r, alpha -> inf with "
                f"r/alpha = {rate:.6g}; every customer buys at that rate while alive "
                "(BG/Poisson limit)"
            )
        if self.limit == "poisson":
            return (
                "no dropout signal and no purchase-rate heterogeneity: a/(a+b) -> 0 and r, "
                f"alpha -> inf with r/alpha = {rate:.6g}; every customer buys at that rate "
                "and nobody drops out (Poisson limit), p_alive = 1"
            )
        if self.limit == "fixed_dropout":
            return (
                "no heterogeneity in dropout between customers: a, b -> inf with a/(a+b) = "
                f"{self.dropout:.6g}; every customer drops out with that probability after each "
                f"purchase (BG/NBD with a fixed dropout probability; r = {self.r:.6g}, "
                f"alpha = {self.alpha:.6g})"
            )
        return None

    def as_dict(self) -> dict[str, float]:
        """Float-valued: {r, alpha, a, b}, plus r_over_alpha (r = alpha = inf) or dropout
        (a = b = inf) in those limits."""
        out = {"r": float(self.r), "alpha": float(self.alpha), "a": float(self.a)}
        out["b"] = float(self.b)
        if self.r_over_alpha is not None:
            out["r_over_alpha"] = float(self.r_over_alpha)
        if self.dropout is not None:
            out["dropout"] = float(self.dropout)
        return out
