"""Is one candidate's worst held-out family really better than another's? A paired bootstrap over the held-out faces.

    python -m research.compare_folds reports/abstain/128-full/abstain.json reports/abstain/heads/recon-w0.5/abstain.json

Both files come from `research.abstain screen` on the same dataset, so each fold holds out the same faces in the same
order (the `scores` of each fold). Each resample draws every fold's held-out fakes and photos with replacement, the
same draw for both candidates, and recomputes each diffusion family's AUC and their minimum (issue 22's first
criterion). Prints the observed worst AUCs, the 95% interval of the difference (B - A) and how often B's worst family
beats A's. With 11 faces in the smallest family, a difference of a few hundredths is usually inside the interval.

Research only: nothing in `deepfake_detector/` or `training/` imports this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def worst_aucs(folds_a: list[dict], folds_b: list[dict], families: list[str], draws: int, seed: int = 0) -> np.ndarray:
    """(draws, 2): the minimum over `families` of each candidate's AUC, per paired resample."""
    from research.lofo import auc

    rng = np.random.default_rng(seed)
    by_family = [(a, b) for a, b in zip(folds_a, folds_b) if a["family"] in families]
    out = np.empty((draws, 2))
    for draw in range(draws):
        worst = [1.0, 1.0]
        for a, b in by_family:
            fakes, photos = len(a["scores"]["held_out_fakes"]), len(a["scores"]["held_out_photos"])
            i, j = rng.integers(0, fakes, fakes), rng.integers(0, photos, photos)
            for k, fold in enumerate((a, b)):
                f, r = np.asarray(fold["scores"]["held_out_fakes"]), np.asarray(fold["scores"]["held_out_photos"])
                worst[k] = min(worst[k], auc(f[i], r[j]))
        out[draw] = worst
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="abstain.json of candidate A (e.g. the default)")
    parser.add_argument("b", help="abstain.json of candidate B")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--output", help="write the result as JSON here too")
    args = parser.parse_args(argv)
    from research.lofo import DIFFUSION

    folds_a, folds_b = (json.loads(Path(path).read_text())["folds"] for path in (args.a, args.b))
    if [f["family"] for f in folds_a] != [f["family"] for f in folds_b] or any(
            len(x["scores"]["held_out_fakes"]) != len(y["scores"]["held_out_fakes"]) for x, y in zip(folds_a, folds_b)):
        raise SystemExit("the two screens do not hold out the same faces (other dataset or folds)")
    families = [f["family"] for f in folds_a if f["family"] in DIFFUSION]
    observed = [min(f["auc_vs_fold_photos"] for f in folds if f["family"] in families) for folds in (folds_a, folds_b)]
    draws = worst_aucs(folds_a, folds_b, families, args.draws)
    difference = draws[:, 1] - draws[:, 0]
    result = {"a": args.a, "b": args.b, "worst_diffusion_auc": {"a": observed[0], "b": observed[1]},
              "difference_b_minus_a": observed[1] - observed[0],
              "difference_95": [float(np.quantile(difference, 0.025)), float(np.quantile(difference, 0.975))],
              "share_of_draws_b_better": float((difference > 0).mean()), "draws": args.draws,
              "worst_auc_se": {"a": float(draws[:, 0].std()), "b": float(draws[:, 1].std())}}
    print(json.dumps(result, indent=2))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
