"""`predictive.refit: on_drift`: keep yesterday's parameters unless today's data disagree.

Refitting every night moves every customer's predictions a little even when nothing changed,
which makes day-over-day comparisons noisy. With `on_drift` the last stored fit keeps scoring
until a likelihood-ratio test says a refit (warm-started from it) explains today's data
significantly better, or the stored fit is older than `predictive.refit_max_age_days`. The
statistic 2 (LL_refit - LL_stored) is asymptotically chi-squared with as many degrees of
freedom as the model has parameters (Wilks 1938); on millions of customers small changes are
already significant, so a large shop refits more often -- as it should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from scipy.stats import chi2


@dataclass(frozen=True)
class RefitDecision:
    reuse: bool
    note: str


def decide(
    *,
    label: str,
    stored_ll: float,
    refit_ll: float,
    parameters: int,
    stored_on: date,
    today: date,
    significance: float,
    max_age_days: int,
) -> RefitDecision:
    """Reuse the stored fit, or take the refit, and say why in a model_fit note."""
    age = (today - stored_on).days
    statistic = max(0.0, 2.0 * (refit_ll - stored_ll)) if math.isfinite(stored_ll) else math.inf
    p_value = float(chi2.sf(statistic, parameters)) if math.isfinite(statistic) else 0.0
    test = (
        f"likelihood ratio {statistic:.4g} on {parameters} df, p = {p_value:.3g} "
        f"(predictive.refit_significance {significance:g})"
    )
    if age > max_age_days:
        return RefitDecision(
            False,
            f"{label} refitted: the stored fit of {stored_on} is {age} days old "
            f"(predictive.refit_max_age_days {max_age_days})",
        )
    if p_value < significance:
        return RefitDecision(
            False,
            f"{label} refitted: today's data fit the stored parameters of {stored_on} "
            f"significantly worse ({test})",
        )
    return RefitDecision(
        True,
        f"{label}: parameters of the fit of {stored_on} reused (predictive.refit: on_drift); "
        f"a refit is not significantly better ({test})",
    )
