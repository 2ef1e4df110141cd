"""Curve arithmetic: quality vs number of decodes, interpolated in log-decodes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _sorted_curve(decodes: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(decodes, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if d.shape != q.shape or d.size == 0:
        raise ValueError("a curve needs as many qualities as decode counts, at least one point")
    if np.any(d <= 0):
        raise ValueError("decode counts must be > 0 (the curve is interpolated in log-decodes)")
    order = np.argsort(d, kind="stable")
    return d[order], q[order]


def decodes_for_quality(decodes: Sequence[float], quality: Sequence[float], target: float) -> tuple[float, bool]:
    """Fewest decodes at which the curve, interpolated linearly in log(decodes), reaches ``target``.

    Walks the curve from few to many decodes and returns the first crossing.
    Returns (decodes, True), or (the curve's largest decode count, False) if
    the curve never reaches the target (then any ratio built on it is a lower
    bound). A curve that starts at or above the target returns its first point.
    """
    d, q = _sorted_curve(decodes, quality)
    if q[0] >= target:
        return float(d[0]), True
    for i in range(1, d.size):
        if q[i] >= target:
            u = (target - q[i - 1]) / (q[i] - q[i - 1])
            return float(math.exp(math.log(d[i - 1]) + u * (math.log(d[i]) - math.log(d[i - 1])))), True
    return float(d[-1]), False


def quality_at_decodes(decodes: Sequence[float], quality: Sequence[float], at: float) -> float:
    """The curve's quality at ``at`` decodes, interpolated linearly in log(decodes) (clamped at the ends)."""
    d, q = _sorted_curve(decodes, quality)
    return float(np.interp(math.log(at), np.log(d), q))


def decode_reduction(uniform_decodes: Sequence[float], uniform_quality: Sequence[float],
                     selective_decodes: float, selective_quality: float) -> dict:
    """evaluation.md: decodes uniform needs to reach the selective quality / decodes selective used."""
    need, reached = decodes_for_quality(uniform_decodes, uniform_quality, selective_quality)
    return {
        "decode_reduction": need / float(selective_decodes),
        "decode_reduction_is_lower_bound": not reached,
        "uniform_decodes_same_quality": need,
        "uniform_quality_same_decodes": quality_at_decodes(uniform_decodes, uniform_quality, selective_decodes),
    }
