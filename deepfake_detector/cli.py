"""The `deepfake-detector` command (installed by `pip install .`).

    deepfake-detector scan PHOTOS/ --output results.csv [--model MODEL] [--threshold T] [--heatmaps DIR] [--format jsonl]
    accelerate launch --multi_gpu --num_processes 2 -m deepfake_detector.cli scan PHOTOS/ --output results.csv

Only argparse is imported at start-up, so `--help` answers at once (and works without torch installed); the
scanner and the model are imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-detector", description="Real or generated? Face-by-face verdicts for photos on disk."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scan = commands.add_parser(
        "scan",
        help="scan image files and folders into a CSV or JSON Lines file, one row per face",
        description=(
            "Scan image files and folders (walked recursively, sorted; hidden names skipped) into one row per face: "
            "file, face_index, face_found, box, crop_box, fake_probability, verdict, unlike_training, image_verdict, then what the file "
            "says about itself (declared_verdict, provenance, c2pa, c2pa_signer, c2pa_source_type, iptc_source_type, "
            "generator), model, threshold, heatmap, error. An unreadable file gets one row with the reason. Rerunning with the same --output "
            "resumes: files already in it are skipped. Under `accelerate launch --multi_gpu --num_processes N` "
            "(or torchrun) the files are split between N processes and merged into --output in order."
        ),
    )
    scan.add_argument("paths", nargs="+", metavar="PATH", help="image files and folders")
    scan.add_argument("--output", required=True, help="results file (.csv, or .jsonl for JSON Lines); resumed if it exists")
    scan.add_argument(
        "--model",
        "--model_dir",
        default=None,
        help="model folder or hf-hub:ORG/NAME (default: deepfake-detector-clip-cnn-fused, installed with the package)",
    )
    scan.add_argument("--threshold", type=probability, default=None, help="decision threshold in [0, 1] (default: the model's); the model's Real and Fake cuts keep their distance from it")
    scan.add_argument("--heatmaps", metavar="DIR", default=None, help="write a Grad-CAM overlay PNG per face under DIR")
    scan.add_argument("--format", choices=("csv", "jsonl"), default=None, help="output format (default: from the --output suffix)")
    scan.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def run_scan(args: argparse.Namespace) -> int:
    from .scan import Processes, list_images, scan

    processes = Processes.from_environment()
    list_images(args.paths)  # a mistyped path fails here, before the model loads
    from .model import default_model_dir, load_detector

    # the default: a checkout's models/ folder, else the copy installed with the package
    model = args.model if args.model is not None else default_model_dir(required=True)
    detector = load_detector(model)
    if processes.rank == 0:
        print(f"model: {detector.name} ({detector.folder})", file=sys.stderr)
    summary = scan(
        args.paths,
        args.output,
        detector,
        threshold=args.threshold,
        heatmaps_dir=args.heatmaps,
        format=args.format,
        processes=processes,
        progress=not args.no_progress,
    )
    if processes.rank == 0:
        print(f"{summary}; results in {args.output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "scan":
            return run_scan(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"deepfake-detector: error: {error}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
