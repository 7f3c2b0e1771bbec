"""Load benchmark of the running app: N concurrent gradio_client clients x M `/predict` calls with 1024-px photos.

    python benchmarks/load.py --clients 8 --requests 125 --output benchmarks/load.json

Starts `python app.py` on a free port (its own upload folder), then writes: success rate, p50/p95/max latency,
requests per second, server RSS before / after / peak (sampled every 0.2 s) and RSS after each tenth of the run (to see
whether memory plateaus), and what was left in the upload folder once the run ended. Not a test: numbers, not verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = ["real/celebahq", "fake/stylegan2"]  # the corpus' 1024x1024 photos


def _cpu_description() -> str:
    sys.path.insert(0, str(REPO_ROOT))
    from training.benchmark import cpu_description

    return cpu_description()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(model: str | None, upload_root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(upload_root), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    if model:
        env["MODEL_ID"] = model
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise SystemExit(f"app.py exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return process, url
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise SystemExit("app.py did not start within 180 s") from None
            time.sleep(0.5)


def run(photos: list[Path], clients: int, requests_per_client: int, model: str | None) -> dict:
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory(prefix="dfd-load-") as root:
        process, url = start_app(model, Path(root))
        try:
            Client(url, verbose=False).predict(handle_file(str(photos[0])), api_name="/predict")  # warm-up
            rss_before = rss_bytes(process.pid)
            total = clients * requests_per_client
            latencies: list[float] = []
            failures: list[str] = []
            checkpoints: list[tuple[int, int]] = []
            peak = [rss_before]
            done = threading.Event()
            lock = threading.Lock()
            progress = tqdm(total=total, desc="requests", unit="req")

            def sample() -> None:
                while not done.wait(0.2):
                    peak[0] = max(peak[0], rss_bytes(process.pid))

            def visitor(index: int) -> None:
                client = Client(url, verbose=False)
                for i in range(requests_per_client):
                    photo = photos[(index * requests_per_client + i) % len(photos)]
                    start = time.perf_counter()
                    try:
                        client.predict(handle_file(str(photo)), api_name="/predict")
                        elapsed = time.perf_counter() - start
                        with lock:
                            latencies.append(elapsed)
                    except Exception as error:  # noqa: BLE001 - counted, reported
                        with lock:
                            failures.append(f"{type(error).__name__}: {error}"[:200])
                    with lock:
                        progress.update(1)
                        finished = len(latencies) + len(failures)
                        if finished % max(1, total // 10) == 0:
                            checkpoints.append((finished, rss_bytes(process.pid)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            threads = [threading.Thread(target=visitor, args=(i,)) for i in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            done.set()
            progress.close()
            time.sleep(2.0)  # one sweep interval and more
            rss_after = rss_bytes(process.pid)
            left = [p for p in Path(root).rglob("*") if p.is_file() and p.stat().st_size > 0 and "/u-" in str(p)]
        finally:
            process.terminate()
            process.wait(timeout=30)
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1) if ordered else float("nan")

    mb = 1024 * 1024
    return {
        "clients": clients,
        "requests": total,
        "succeeded": len(latencies),
        "success_rate": round(len(latencies) / total, 4),
        "failures": sorted(set(failures))[:10],
        "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "max": pct(1.0), "mean": round(statistics.mean(ordered) * 1000, 1) if ordered else None},
        "requests_per_second": round(total / wall, 2),
        "wall_seconds": round(wall, 1),
        "server_rss_mb": {"before": round(rss_before / mb), "after": round(rss_after / mb), "peak": round(peak[0] / mb)},
        "server_rss_mb_by_requests": [[n, round(r / mb)] for n, r in checkpoints],
        "uploads_left_on_disk": len(left),
        "photos": sorted({f"{p.parent.name}/{p.name}" for p in photos})[:3] + ["..."],
        "photo_count": len(photos),
        "machine": {"cpus": os.cpu_count(), "cpu": _cpu_description(), "python": platform.python_version(), "platform": platform.platform()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=125, help="requests per client")
    parser.add_argument("--data", default=os.environ.get("DFD_CORPUS") or str(REPO_ROOT.parent / "shared" / "data" / "faces"),
                        help="the dev corpus (default: DFD_CORPUS, else ../shared/data/faces)")
    parser.add_argument("--model", help="MODEL_ID for the app (default: the bundled model)")
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "load.json"))
    args = parser.parse_args(argv)
    photos = [p for folder in DEFAULT_PHOTOS for p in sorted((Path(args.data) / folder).glob("*")) if p.suffix.lower() in (".jpg", ".png")]
    if not photos:
        raise SystemExit(f"no photos under {args.data}/{{{','.join(DEFAULT_PHOTOS)}}}")
    result = run(photos, args.clients, args.requests, args.model)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("success_rate", "latency_ms", "requests_per_second", "server_rss_mb")}, indent=2))


if __name__ == "__main__":
    main()
