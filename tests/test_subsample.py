"""research.subsample: thin sources kept whole, big ones capped, seeded."""

from __future__ import annotations

import pytest

from research.subsample import subsample_indices


def test_thin_sources_kept_whole_and_big_ones_capped():
    labels = [1] * 100 + [1] * 5 + [0] * 30
    sources = ["stargan"] * 100 + ["sd21"] * 5 + ["ffhq"] * 30
    chosen = subsample_indices(labels, sources, per_source=10, seed=0)
    picked = [sources[i] for i in chosen]
    assert picked.count("stargan") == 10 and picked.count("sd21") == 5 and picked.count("ffhq") == 10
    assert chosen == sorted(set(chosen))
    assert chosen == subsample_indices(labels, sources, per_source=10, seed=0)
    assert chosen != subsample_indices(labels, sources, per_source=10, seed=1)


def test_per_source_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        subsample_indices([0], ["ffhq"], per_source=0)
