"""The one percentile formula of the bench (the Python load client and the read side)."""

from __future__ import annotations


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile, interpolated linearly between the two nearest ranks (the
    common "linear" method, numpy's default): p99 of 100 values lies between the 99th and
    the largest, not on the largest. 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = p / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
