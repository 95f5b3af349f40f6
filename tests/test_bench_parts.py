"""Parts of the benchmark harness that its quick run cannot show are right."""

from __future__ import annotations

import statistics

import pytest

from bench.stats import percentile


def test_percentile_interpolates_like_the_linear_method() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled below
    values = values[::2] + values[1::2]
    linear = statistics.quantiles(values, n=100, method="inclusive")
    for p in (1, 50, 90, 99):
        assert percentile(values, p) == pytest.approx(linear[p - 1])
    assert percentile(values, 99) == pytest.approx(99.01)  # not the maximum
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == 0.0
