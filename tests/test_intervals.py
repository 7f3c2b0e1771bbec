"""Wilson 95% intervals, recomputed independently: scipy's binomtest and hand-checked values."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from training.intervals import SMALL_N, format_proportion, proportion, wilson_interval


@pytest.mark.parametrize("n", [1, 3, 4, 29, 30, 197, 985])
def test_wilson_matches_scipy(n):
    for successes in sorted({0, 1, n // 3, n // 2, n - 1, n} & set(range(n + 1))):
        expected = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(successes, n) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_wilson_hand_values():
    # 0 of 10: upper bound z^2 / (n + z^2) = 3.8415 / 13.8415; 5 of 10: 0.5 -/+ 0.2366 (Brown, Cai and DasGupta 2001)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def test_small_samples_are_flagged():
    assert proportion(3, 4)["small_n"] and not proportion(29, SMALL_N)["small_n"]
    assert format_proportion(proportion(0, 4)).endswith(f"(n=4 < {SMALL_N})")
    assert format_proportion(proportion(88, 100)) == "0.880 [0.80, 0.93]"
    assert format_proportion(None) == "n/a"
