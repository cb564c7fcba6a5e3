"""When a limit model on the boundary of the parameter space is an acceptable answer.

Shared by ``gg_limit`` (Gamma-Gamma) and ``bg_limits`` (BG/NBD). The interior search has run
towards a face of the parameter space (e.g. q, v -> inf; a/(a+b) -> 0) and the limit model on
that face has been fitted. ``found`` are log-likelihoods of the full model at the point the
search reached and at points on rays from the limit into the interior.

- If the interior search *succeeded* (a usable optimum, only far out towards the face), the
  limit replaces it only if nothing found beats the limit by more than ``FLAT_PER_CUSTOMER``
  nats per customer: the likelihood is flat along the way out, the sup is on the boundary.
- If the interior search *failed* (line search gave up, a bound was hit, the likelihood is
  flat there), no interior optimum is available, and the limit is taken if nothing found
  beats it by more than ``LR_SLACK`` nats: half the 95% quantile of chi-square(1), i.e. a
  likelihood-ratio test at 5% would not prefer any point found to the limit. (With data
  simulated from the limit, sampling noise often puts the sup a fraction of a nat inside the
  boundary, along a ray the optimiser cannot follow.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

FLAT_PER_CUSTOMER = 1e-6
LR_SLACK = 1.92
# Points along a ray into the interior at which the full likelihood is compared with the limit.
# Not beyond 1e7: the full likelihoods add terms like n q log v, whose rounding error (~1e-16
# of them) would then rival FLAT_PER_CUSTOMER.
RAY = tuple(10.0**k for k in range(3, 8))


def limit_is_adequate(
    limit_ll: float, found: Iterable[float], n: float, *, interior_failed: bool
) -> bool:
    """See the module docstring; non-finite entries of ``found`` are ignored."""
    best = max((f for f in found if math.isfinite(f)), default=-math.inf)
    slack = LR_SLACK if interior_failed else FLAT_PER_CUSTOMER * n
    return limit_ll >= best - slack
