"""CPU benchmarks that write their numbers to a file: app latency and the training data pipeline.

    python -m training.benchmark --model models/deepfake-detector-effnet-lite0 --data data/faces-dataset --output benchmarks/cpu.json

- `classify_one_face_ms`: one face crop -> calibrated P(fake) (canonical face, model, any test-time augmentation the
  model folder asks for), batch of one, median ms: the per-face classification cost.
- `predict_ms`: one uploaded face photo -> verdict (decode excluded; face detection, canonical crop, model), median ms.
- `predict_with_gradcam_ms`: the same with the Grad-CAM heatmap the app shows.
- `classify_images_per_second`: batched classification of face crops (what training.evaluate does).
- `pipeline_images_per_second`: decode + `robust` augmentation in one process (what one DataLoader worker delivers);
  compare with the training images/s in the model's metrics.json: the pipeline must outrun the model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch


def _time(function, repeats: int) -> list[float]:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")  # what int8 and float kernels dispatch on


def cpu_description(cpuinfo: str | None = None) -> str:
    """The processor the numbers were taken on, e.g. "AMD EPYC (avx2)": milliseconds mean little without it (the same
    code classified a face in 18 ms on one 2-core machine here and 37 ms on another)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    name = fields.get("model name") or platform.processor() or platform.machine()
    return f"{name} ({', '.join(flag for flag in SPEED_FLAGS if flag in flags) or 'no AVX2'})"


def run(model: str, data: str, n_images: int = 64) -> dict:
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import classify_crops, predict
    from training.data import load_built_dataset
    from training.transforms import apply_preset, make_preset

    detector = load_detector(model)
    split = load_built_dataset(data)["test"].shuffle(seed=0).select(range(n_images))
    images = [load_rgb_array(row["image"]["bytes"]) for row in split]
    predict(images[0], detector)  # warm-up
    predict_ms = [t for image in images[:32] for t in _time(lambda: predict(image, detector), 1)]
    cam_ms = [t for image in images[:16] for t in _time(lambda: predict(image, detector, explain=True), 1)]
    one_face_ms = [t for image in images[:32] for t in _time(lambda: classify_crops([image], detector), 1)]
    start = time.perf_counter()
    classify_crops(images, detector)
    classify_rate = len(images) / (time.perf_counter() - start)
    pipeline = make_preset("robust", detector.data_config)
    rows = [(row["image"]["bytes"], row["landmarks"]) for row in split]
    start = time.perf_counter()
    for data_bytes, landmarks in rows:
        apply_preset(pipeline, load_rgb_array(data_bytes), landmarks)
    pipeline_rate = len(rows) / (time.perf_counter() - start)
    return {
        "model": detector.name,
        "machine": f"{cpu_description()}, {torch.get_num_threads()} torch threads",
        "images": n_images,
        "classify_one_face_ms": statistics.median(one_face_ms),
        "predict_ms": statistics.median(predict_ms),
        "predict_p90_ms": sorted(predict_ms)[int(0.9 * len(predict_ms))],
        "predict_with_gradcam_ms": statistics.median(cam_ms),
        "classify_images_per_second": classify_rate,
        "pipeline_images_per_second": pipeline_rate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "--model_dir", default="models/deepfake-detector-clip-cnn-fused")
    parser.add_argument("--data", "--dataset", default="data/faces-dataset")
    parser.add_argument("--output", default="benchmarks/cpu.json")
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args(argv)
    result = run(args.model, args.data, args.images)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
