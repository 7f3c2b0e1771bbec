"""What reading provenance adds to /predict: `read_provenance` + its JSON on 1024-px photos, in milliseconds.

    python benchmarks/provenance.py --repeats 300 --output benchmarks/provenance.json

`predict_api` adds exactly one `read_provenance(data).to_json()` call on the bytes it already holds, so that call's
time is the cost. Measured on a 1024-px JPEG and PNG without metadata (the budget: at most 10 ms), and for
comparison on the same JPEG with a signed C2PA manifest (the library's path) and with camera EXIF. The median and
p90 of `--repeats` calls after a warm-up; the CPU is named beside the numbers.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from PIL import Image  # noqa: E402

from deepfake_detector.provenance import read_provenance  # noqa: E402

BUDGET_MS = 10.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def photo_1024(format: str) -> bytes:
    """The bundled astronaut photo at 1024 x 1024, saved without any metadata."""
    buffer = io.BytesIO()
    Image.open(REPO_ROOT / "examples" / "astronaut.jpg").convert("RGB").resize((1024, 1024), Image.LANCZOS).save(buffer, format, quality=92)
    return buffer.getvalue()


def measure(data: bytes, repeats: int) -> dict:
    for _ in range(10):
        read_provenance(data).to_json()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        read_provenance(data).to_json()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"bytes": len(data), "median_ms": round(statistics.median(times), 3), "p90_ms": round(times[int(0.9 * len(times))], 3),
            "max_ms": round(times[-1], 3), "summary": read_provenance(data).summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "provenance.json"))
    args = parser.parse_args(argv)

    import provenance_files as files  # the tests' own signing helpers (c2pa-python Builder, test certificates)

    jpeg, png = photo_1024("JPEG"), photo_1024("PNG")
    cases = {"1024-px JPEG, no metadata": jpeg, "1024-px PNG, no metadata": png}
    chain = files.make_chain()
    cases["1024-px JPEG, signed C2PA manifest"] = files.sign(jpeg, "image/jpeg", chain)
    cases["512-px JPEG, camera EXIF"] = files.camera_jpeg()
    results = {name: measure(data, args.repeats) for name, data in cases.items()}
    worst = max(results[name]["median_ms"] for name in list(cases)[:2])
    report = {
        "what": "read_provenance(data).to_json(): the whole cost provenance adds to /predict",
        "machine": f"{cpu_name()}, Python {platform.python_version()}",
        "repeats": args.repeats,
        "budget_ms": BUDGET_MS,
        "no_metadata_median_ms": worst,
        "met": worst <= BUDGET_MS,
        "cases": results,
    }
    Path(args.output).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, result in results.items():
        print(f"{name}: median {result['median_ms']} ms, p90 {result['p90_ms']} ms")
    print(f"budget {BUDGET_MS} ms on photos without metadata: {'met' if report['met'] else 'MISSED'} ({worst} ms); written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
