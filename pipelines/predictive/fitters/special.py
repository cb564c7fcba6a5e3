"""Small numerical helpers shared by the purchase models (no I/O)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pipelines.predictive.fitters.base import FloatArray

# Parameter coincidences at which the closed form is 0/0 or scipy's hyp2f1 loses accuracy are
# bridged: within COINCIDENCE of one we evaluate at 2, 4 times that distance on either side
# and interpolate with a cubic (interpolation error ~1e-11, evaluation error ~1e-10 or less).
COINCIDENCE = 1e-3
_BRIDGE_NODES = np.array([-2.0, -1.0, 1.0, 2.0])


def bridge(
    f: Callable[[float], FloatArray], center: float, value: float, step: float
) -> FloatArray:
    """Cubic Lagrange interpolation at ``value`` of f evaluated at center + step * nodes."""
    u = (value - center) / step
    out: FloatArray | float = 0.0
    for j, nj in enumerate(_BRIDGE_NODES):
        others = np.delete(_BRIDGE_NODES, j)
        weight = float(np.prod((u - others) / (nj - others)))
        out = out + weight * f(center + step * nj)
    return np.asarray(out, dtype=np.float64)
