"""training.plots on the awkward cases real evaluations produce: sources all right or all wrong, where the
Wilson bound equals the point up to float rounding (0 of 3, 10 of 10, 25 of 25 crashed matplotlib)."""

from __future__ import annotations

from training.intervals import wilson_interval
from training.plots import plot_per_source


def test_per_source_plot_with_thin_sources(tmp_path):
    per_source = {}
    for name, (right, n) in {"none_of_3": (0, 3), "all_of_10": (10, 10), "all_of_25": (25, 25), "most": (900, 985)}.items():
        per_source[name] = {"accuracy": right / n, "accuracy_ci95": list(wilson_interval(right, n)), "n_fake": n, "n_real": 0, "count": n}
    path = plot_per_source(per_source, tmp_path / "per_source.png")
    assert path.stat().st_size > 5_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
