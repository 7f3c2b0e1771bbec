"""The model card's section on unseen generators (issue 22), rendered from the files that measured it: the
leave-one-family-out screen (`research.lofo`), the test-split metrics of both models (`training.evaluate`) and their
speed (`training.benchmark`, `benchmarks/load.py`).

    python -m research.issue22_card --lofo reports/lofo/lofo.json --default NAME --baseline NAME \
        --metrics models/NEW/metrics.json --baseline_metrics runs/eval-r1-v3/metrics.json \
        --benchmark benchmarks/cpu-NEW.json --baseline_benchmark benchmarks/cpu.json \
        --load benchmarks/load-1client-NEW.json --baseline_load benchmarks/load-1client.json --output reports/lofo/card.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from research.lofo import candidates_table
from training.sources import FAMILIES

TARGETS = {"worst_diffusion_auc": 0.85, "caught": 0.80, "called_real": 0.10, "photos_called_fake": 0.03,
           "balanced_accuracy": 0.95, "roc_auc": 0.985, "ms_per_face": 60.0, "predict_p50_ms": 300.0}


def _pct(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def family_table(default: dict, baseline: dict, names: tuple[str, str]) -> str:
    lines = [f"| held-out family | faces | AUC vs held-out photos ({names[0]} / {names[1]}) | caught as Fake | called Real | fold's photos called Fake |",
             "|---|---:|---:|---:|---:|---:|"]
    for family, _ in FAMILIES:
        a, b = default["per_family"].get(family), baseline["per_family"].get(family)
        if not a:
            continue
        lines.append(
            f"| {family} | {a['fakes']} | {_num(a['auc_vs_fold_photos'])} / {_num(b['auc_vs_fold_photos'])} | {_pct(a['caught_as_fake'])} / {_pct(b['caught_as_fake'])} | "
            f"{_pct(a['called_real'])} / {_pct(b['called_real'])} | {_pct(a['photos_called_fake'])} / {_pct(b['photos_called_fake'])} of {a['photos']} |")
    return "\n".join(lines)


def read_candidate(spec: str) -> tuple[str, dict]:
    """`LABEL=PATH#NAME`: the candidate NAME (a rule of `research.abstain`, a candidate of `research.lofo`) in PATH."""
    label, _, rest = spec.rpartition("=")  # a label may hold "=" (C=0.003), the path does not
    path, _, name = rest.rpartition("#")
    if not label or not path or not name:
        raise SystemExit(f"--ablation {spec!r}: expected LABEL=PATH#NAME")
    candidates = json.loads(Path(path).read_text())["candidates"]
    if name not in candidates:
        raise SystemExit(f"--ablation {spec!r}: {path} has no candidate {name!r} ({', '.join(candidates)})")
    return label, candidates[name]


def targets_table(default: dict, metrics: dict, benchmark: dict, load: dict | None, baseline: dict, baseline_metrics: dict,
                  baseline_benchmark: dict, baseline_load: dict | None, baseline_label: str = "r1-flip (previous default)") -> str:
    def family_worst(summary: dict, key: str, worst=min):
        values = [(row[key], family) for family, row in summary["per_family"].items() if family != "gan" and row[key] is not None]
        return worst(values)

    rows = []
    value, family = default["worst_diffusion_auc"], default["worst_diffusion_family"]
    rows.append(("worst held-out diffusion family AUC >= 0.85", f"{value:.3f} ({family})", f"{baseline['worst_diffusion_auc']:.3f} ({baseline['worst_diffusion_family']})", value >= TARGETS["worst_diffusion_auc"]))
    caught, family = family_worst(default, "caught_as_fake")
    rows.append(("each held-out diffusion family caught as Fake >= 80%", f"lowest {caught:.0%} ({family})", "lowest {:.0%} ({})".format(*family_worst(baseline, "caught_as_fake")), caught >= TARGETS["caught"]))
    real, family = family_worst(default, "called_real", max)
    rows.append(("each held-out diffusion family called Real <= 10%", f"highest {real:.0%} ({family})", "highest {:.0%} ({})".format(*family_worst(baseline, "called_real", max)), real <= TARGETS["called_real"]))
    photos = default["held_out_photos_called_fake"]
    rows.append(("held-out everyday photos called Fake <= 3%", f"{photos:.1%} of {default['held_out_photos']} faces", f"{baseline['held_out_photos_called_fake']:.1%}", photos <= TARGETS["photos_called_fake"]))
    rows.append(("test split balanced accuracy >= 0.95", f"{metrics['balanced_accuracy']:.3f}", f"{baseline_metrics['balanced_accuracy']:.3f}", metrics["balanced_accuracy"] >= TARGETS["balanced_accuracy"]))
    rows.append(("test split ROC AUC >= 0.985", f"{metrics['roc_auc']:.3f}", f"{baseline_metrics['roc_auc']:.3f}", metrics["roc_auc"] >= TARGETS["roc_auc"]))
    ms = benchmark["classify_one_face_ms"]
    rows.append((f"one face <= 60 ms ({benchmark.get('machine', 'this CPU')})", f"{ms:.1f} ms", f"{baseline_benchmark['classify_one_face_ms']:.1f} ms", ms <= TARGETS["ms_per_face"]))
    if load and baseline_load:
        p50 = load["latency_ms"]["p50"]
        rows.append(("1024-px `/predict` p50 <= 300 ms (gradio_client, 1 client)", f"{p50:.0f} ms", f"{baseline_load['latency_ms']['p50']:.0f} ms", p50 <= TARGETS["predict_p50_ms"]))
    lines = [f"| target | this model | {baseline_label} | |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {mine} | {theirs} | {_met(ok)} |" for name, mine, theirs, ok in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("lofo", "default", "baseline", "metrics", "baseline_metrics", "benchmark", "baseline_benchmark", "output"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--load")
    parser.add_argument("--baseline_load")
    parser.add_argument("--baseline_lofo", help="the baseline's screen, when not in --lofo (default: --lofo)")
    parser.add_argument("--baseline_label", default="r1-flip (previous default)")
    parser.add_argument("--note", default="", help="a paragraph after the tables (how the operating point was chosen)")
    parser.add_argument("--ablation", action="append", default=[], metavar="LABEL=PATH#NAME",
                        help="a row of the candidates' table (repeatable, in this order): NAME in PATH's candidates")
    parser.add_argument("--ablation_note", default="", help="a paragraph under the candidates' table")
    args = parser.parse_args(argv)
    candidates = json.loads(Path(args.lofo).read_text())["candidates"]
    read = lambda path: json.loads(Path(path).read_text()) if path else None  # noqa: E731
    default = candidates[args.default]
    baseline = json.loads(Path(args.baseline_lofo or args.lofo).read_text())["candidates"][args.baseline]
    screens = (f"The screens: `{args.lofo}` (this model) and `{args.baseline_lofo}`." if args.baseline_lofo
               else f"The screen: `{args.lofo}` (both rules, the same folds).")
    ablation = ""
    if args.ablation:
        ablation = (f"\n### Candidates on the same folds (ablation)\n\nEach at its own operating rule; the first criterion is the "
                    f"worst diffusion AUC, then held-out photos called Fake, then the test split.\n\n"
                    f"{candidates_table([read_candidate(spec) for spec in args.ablation])}\n\n{args.ablation_note}\n")
    text = f"""## Unseen generators: leave one family out (issue 22)

Each generator family was held out whole (every split), with a disjoint set of everyday-photo collections; the head was
fitted on the train split of the rest and calibrated on its validation split exactly as the shipped head is, then
scored on what it never saw, at this model's operating rule (`{args.default}`); the comparison column is
{args.baseline_label}. {screens}

{family_table(default, baseline, ("this model", args.baseline_label.split(" (")[0]))}

### Targets

{targets_table(default, read(args.metrics), read(args.benchmark), read(args.load), baseline, read(args.baseline_metrics), read(args.baseline_benchmark), read(args.baseline_load), args.baseline_label)}

{args.note}
{ablation}
Test split: `data/faces-dataset-v3` (the extra corpus' repositories dealt whole; its test split holds EasyPhoto and
OmniGen faces that no training row shares a repository with).
"""
    Path(args.output).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
