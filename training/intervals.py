"""Wilson score intervals for the proportions the reports show (accuracy, false-fake rate per source).

A per-source accuracy on 4 images is not a fact; its interval says so. Wilson's interval (Wilson, 1927; Brown, Cai
and DasGupta, 2001) stays inside [0, 1] and keeps close to its nominal coverage for small n and proportions near 0 or
1, where the normal approximation does not.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # the standard normal's 97.5% quantile
SMALL_N = 30  # below this, a proportion is flagged in every report: too few images to read much into


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval for `successes` out of `n`; (0, 1) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict:
    """{"value", "successes", "n", "ci95": [low, high], "small_n"} for the reports; value None when n is 0."""
    low, high = wilson_interval(int(successes), int(n))
    return {"value": successes / n if n else None, "successes": int(successes), "n": int(n), "ci95": [low, high], "small_n": n < SMALL_N}


def format_proportion(block: dict | None, digits: int = 3) -> str:
    """"0.850 [0.78, 0.90]" with " (n<30)" appended for small n; "n/a" for no data."""
    if not block or block.get("value") is None:
        return "n/a"
    low, high = block["ci95"]
    text = f"{block['value']:.{digits}f} [{low:.2f}, {high:.2f}]"
    return text + f" (n={block['n']} < {SMALL_N})" if block["small_n"] else text
