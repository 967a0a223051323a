"""Whether what a model sees now is what it saw before: PSI and the two-sample KS statistic.

PSI (population stability index) bins the reference sample at its deciles (10 quantile bins,
cut points interpolated as numpy's default `linear` method does, repeated cut points merged)
and sums (current share - reference share) * ln(current share / reference share) over the
bins; a bin empty in either sample counts as a share of EMPTY_SHARE, so one empty bin adds a
large finite term instead of an infinite one. The KS statistic is the largest distance between
the two samples' empirical distribution functions (scipy's `ks_2samp`), and its p-value the
asymptotic Kolmogorov distribution's (scipy's `kstwobign`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

BINS = 10
EMPTY_SHARE = 1e-4
"""The share an empty bin counts as: small against the 0.1 of a decile, never 0."""


def compare(reference: Sequence[float], current: Sequence[float]) -> dict[str, Any]:
    """PSI, KS statistic and p-value of `current` against `reference` (None when one is empty)."""
    result: dict[str, Any] = {
        "reference_count": len(reference),
        "count": len(current),
        "psi": None,
        "ks": None,
        "ks_pvalue": None,
    }
    if not reference or not current:
        return result
    ref, cur = sorted(reference), sorted(current)
    statistic = ks_statistic(ref, cur)
    result.update(
        psi=psi(ref, cur),
        ks=statistic,
        ks_pvalue=ks_pvalue(statistic, len(ref), len(cur)),
    )
    return result


def psi(reference: Sequence[float], current: Sequence[float], bins: int = BINS) -> float:
    """The population stability index of `current` against `reference`, both sorted."""
    cuts = sorted({quantile(reference, k / bins) for k in range(1, bins)})
    expected = _shares(reference, cuts)
    actual = _shares(current, cuts)
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))


def quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly (numpy's default method)."""
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def _shares(ordered: Sequence[float], cuts: Sequence[float]) -> list[float]:
    """The share of sorted values in each bin (-inf, c1], (c1, c2], ..., (ck, inf)."""
    total = len(ordered)
    edges = [0, *(bisect_right(ordered, cut) for cut in cuts), total]
    return [max((hi - lo) / total, EMPTY_SHARE) for lo, hi in pairwise(edges)]


def ks_statistic(first: Sequence[float], second: Sequence[float]) -> float:
    """The largest gap between the empirical distribution functions of two sorted samples."""
    n, m = len(first), len(second)
    gap = 0.0
    for value in (*first, *second):
        below_first = bisect_right(first, value) / n
        below_second = bisect_right(second, value) / m
        gap = max(gap, abs(below_first - below_second))
    return gap


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """The asymptotic two-sided p-value of a two-sample KS statistic for sample sizes n and m."""
    effective = n * m / (n + m)
    return _kolmogorov_sf(math.sqrt(effective) * statistic)


def _kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution K."""
    if x <= 0:
        return 1.0
    if x < 1:
        # Below 1 the alternating series converges slowly; Jacobi's theta form converges fast:
        # P(K <= x) = sqrt(2 pi) / x * sum exp(-(2k - 1)^2 pi^2 / (8 x^2)).
        below = (
            math.sqrt(2 * math.pi)
            / x
            * sum(math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * x * x)) for k in range(1, 8))
        )
        return 1.0 - below
    # P(K > x) = 2 * sum (-1)^(k-1) exp(-2 k^2 x^2): at x >= 1 its terms fall below 1e-16 by k=5.
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 8))
    return min(1.0, max(0.0, 2 * total))
