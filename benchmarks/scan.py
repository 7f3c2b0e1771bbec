"""Images/s of `deepfake-detector scan` with 1 process and with 2 processes under `accelerate launch`.

    python benchmarks/scan.py --images 240 --repeats 2 --output benchmarks/scan.json

Scans the same fixed sample of the dev corpus (every source, whole photos included) with: one process on the
machine's default threads, one process on one thread, and two one-thread processes (accelerate launch --multi_gpu
--num_processes 2, gloo on CPU). Configurations are interleaved so that a change in the machine's load hits all of
them alike; the load average is recorded beside each run. images/s is the scanner's own figure (photos scanned over
the time from the first photo to the last, all processes), and wall_s adds start-up and model loading.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"scanned (\d+) images \((\d+) face rows, (\d+) unreadable.* in ([\d.]+) s: ([\d.]+) images/s with (\d+) process")


def sample(corpus: Path, count: int) -> list[Path]:
    """`count` files spread evenly over MANIFEST.csv (sorted by path), so every source is represented."""
    with (corpus / "MANIFEST.csv").open(newline="") as handle:
        paths = sorted(row["path"] for row in csv.DictReader(handle))
    step = max(len(paths) // count, 1)
    return [corpus / path for path in paths[::step][:count]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(config: str, folder: Path, model: str, output: Path) -> dict:
    scan = ["-m", "deepfake_detector.cli", "scan", str(folder), "--output", str(output), "--model", model, "--no_progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if config == "1 process, default threads":
        env.pop("OMP_NUM_THREADS", None)
        command, processes, threads = [sys.executable, *scan], 1, None
    elif config == "1 process, 1 thread":
        env["OMP_NUM_THREADS"] = "1"
        command, processes, threads = [sys.executable, *scan], 1, 1
    else:
        env["OMP_NUM_THREADS"] = "1"
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                  "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
        command, processes, threads = [*launch, *scan], 2, 1
    output.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    match = SUMMARY.search(result.stderr)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"{config} failed ({result.returncode}): {result.stderr[-3000:]}")
    scanned, faces, unreadable, seconds, rate, reported = match.groups()
    assert int(reported) == processes, f"{config}: the scan ran {reported} processes"
    return {
        "config": config,
        "processes": processes,
        "threads_per_process": threads,
        "images": int(scanned),
        "face_rows": int(faces),
        "unreadable": int(unreadable),
        "scan_s": float(seconds),
        "images_per_second": float(rate),
        "wall_s": round(wall, 1),
        "load_average_1min_before": round(load_before, 2),
        "output_sha": hashlib.sha256(output.read_bytes()).hexdigest()[:16],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("DFD_CORPUS") or str(REPO_ROOT.parent / "shared" / "data" / "faces"))
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "deepfake-detector-effnet-lite0"))
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "scan.json"))
    args = parser.parse_args()

    configs = ["1 process, default threads", "1 process, 1 thread", "2 processes (accelerate launch), 1 thread each"]
    runs = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "photos"
        folder.mkdir()
        for index, path in enumerate(sample(Path(args.data), args.images)):
            (folder / f"{index:05d}_{path.name}").symlink_to(path)
        for repeat in range(args.repeats):
            for config in configs:
                runs.append({"repeat": repeat, **run(config, folder, args.model, Path(temporary) / "out.csv")})
                print(json.dumps(runs[-1]), flush=True)
    summary = {
        config: {
            "median_images_per_second": round(statistics.median(r["images_per_second"] for r in runs if r["config"] == config), 2),
            "median_wall_s": round(statistics.median(r["wall_s"] for r in runs if r["config"] == config), 1),
        }
        for config in configs
    }
    report = {
        "what": "deepfake-detector scan images/s; images/s = photos / time from the first photo to the last (all processes)",
        "machine": f"{os.cpu_count()} CPU cores, no GPU, shared with other jobs while this ran (see load_average_1min_before)",
        "images": args.images,
        "sample": "every n-th file of the dev corpus MANIFEST.csv (all sources, whole photos included)",
        "summary": summary,
        "same_rows_in_every_config_with_1_thread": len({r["output_sha"] for r in runs if r["threads_per_process"] == 1}) == 1,
        "runs": runs,
        "command": f"python benchmarks/scan.py --images {args.images} --repeats {args.repeats}",
    }
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
