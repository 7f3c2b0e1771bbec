"""Scan folders of photos: one row per face (file, box, calibrated P(fake), verdict) in CSV or JSON Lines.

    deepfake-detector scan PHOTOS/ more.jpg --output results.csv [--model MODEL] [--threshold T] [--heatmaps DIR]
    accelerate launch --multi_gpu --num_processes 2 -m deepfake_detector.cli scan PHOTOS/ --output results.csv

Every photo goes through `predict()`, the function the app calls. Rows are written and flushed photo by photo, so
an interrupted scan resumes where it stopped: photos already in the output are skipped, and a half-written last
line is cut off. With several processes (WORLD_SIZE > 1, e.g. under `accelerate launch` or `torchrun`) process r
scans photos r, r + W, r + 2W, ... of the ordered list into its own shard (`OUTPUT.part-r-of-W`) and the main
process merges the shards into the output in list order once all are done, so the output does not depend on W.

Progress goes to stderr: tqdm's bar on a terminal; into a file or a CI log (stderr not a TTY) one plain line at a time
(`PlainProgress`: count/total, percent, elapsed, ETA, rate), every PROGRESS_PERCENT of the photos or every
PROGRESS_SECONDS, whichever is sparser, and always the last one, so a log holds a few readable lines and no '\r'.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# Suffixes picked up when walking a folder (a file named on the command line is scanned whatever its suffix).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
FORMATS = ("csv", "jsonl")
COLUMNS = (
    "file",  # the path as walked from the command-line argument
    "face_index",  # 0, 1, ... largest face first; empty for an unreadable file
    "face_found",  # false: no face was detected and the whole image was classified (one row, box = the image)
    "box",  # [x, y, width, height] of the face in the image
    "crop_box",  # [x0, y0, x1, y1] of the square the model saw
    "fake_probability",  # calibrated P(fake) of this face, 6 decimals; empty where predict() shows none
    "verdict",  # this face's verdict from predict(): Real / Fake / Uncertain (or what it says when it does not judge)
    "unlike_training",  # true: the face lies beyond the model's familiarity limit, so it is never called Real; empty if not judged
    "image_verdict",  # the photo's verdict from its faces' pixels (predict())
    # What the file says about itself (deepfake_detector.provenance), the same on every row of a photo:
    "declared_verdict",  # "Fake" when trusted, signed Content Credentials declare AI generation or editing, else empty
    "provenance",  # the one line the page shows
    "c2pa",  # Content Credentials: absent / trusted / valid (signer on no trust list) / invalid / unreadable
    "c2pa_signer",
    "c2pa_source_type",  # the manifest's IPTC digital source type, e.g. trainedAlgorithmicMedia
    "iptc_source_type",  # the XMP's (unsigned)
    "generator",  # the tool unsigned metadata names (PNG text chunks, EXIF Software, XMP CreatorTool)
    "model",
    "threshold",
    "heatmap",  # the Grad-CAM PNG written for this face (--heatmaps), else empty
    "error",  # why an unreadable file could not be scanned, else empty
)
PROBABILITY_DECIMALS = 6
# A plain progress line (stderr not a terminal) after this share of the photos and this many seconds since the last one.
PROGRESS_PERCENT = 5.0
PROGRESS_SECONDS = 10.0


@dataclass
class ScanSummary:
    files: int  # photos in the list
    skipped: int  # already in the output from an earlier run
    scanned: int  # scanned by this run, all processes together
    faces: int  # face rows written by this run
    unreadable: int  # error rows written by this run
    seconds: float  # from the first photo to the last, all processes
    processes: int

    @property
    def images_per_second(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (
            f"scanned {self.scanned} images ({self.faces} face rows, {self.unreadable} unreadable; {self.skipped} "
            f"already in the output) in {self.seconds:.1f} s: {self.images_per_second:.2f} images/s with "
            f"{self.processes} process{'es' if self.processes > 1 else ''}"
        )


def list_images(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Photos to scan, in a fixed order: each argument in turn, a folder's files sorted (hidden names skipped)."""
    files: list[str] = []
    for argument in paths:
        path = Path(argument)
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            files.extend(str(p) for p in sorted(found))
        elif path.exists():
            files.append(str(path))
        else:
            raise ValueError(f"{path} does not exist; pass image files or folders of images.")
    return list(dict.fromkeys(files))  # a photo named twice is scanned once, at its first place


def infer_format(output: str | os.PathLike, format: str | None = None) -> str:
    """`format` if given, else from the output's suffix: .jsonl/.json -> jsonl, anything else -> csv."""
    if format is None:
        format = "jsonl" if Path(output).suffix.lower() in (".jsonl", ".json") else "csv"
    if format not in FORMATS:
        raise ValueError(f"Unknown output format {format!r}; use one of {FORMATS}.")
    return format


def heatmap_path(heatmaps_dir: Path, file: str, face_index: int) -> Path:
    """DIR/<the file's path, anchors and '..' made safe>.face<i>.png: distinct input paths never share a PNG."""
    parts = [("__" if part == ".." else part) for part in Path(file).parts if part not in ("/", "\\", ".")]
    relative = Path(*parts) if parts else Path("image")
    return heatmaps_dir / relative.parent / f"{relative.name}.face{face_index}.png"


def scan_file(file: str, detector, threshold: float | None, heatmaps_dir: Path | None = None) -> list[dict]:
    """Rows for one photo: one per face, or one row with the reason it cannot be read."""
    from .images import ImageError, load_rgb_array
    from .predict import predict
    from .provenance import read_provenance

    threshold_used = detector.threshold if threshold is None else float(threshold)
    try:
        data = Path(file).read_bytes()  # read once: the pixels and the provenance come from the same bytes
        image = load_rgb_array(data)
    except ImageError as error:
        return [error_row(file, str(error), detector.name, threshold_used)]
    except OSError as error:  # permission denied, a folder named like a photo, a vanished network file...
        return [error_row(file, f"The file cannot be read ({error.strerror or error}).", detector.name, threshold_used)]
    prediction = predict(image, detector, threshold=threshold_used, explain=heatmaps_dir is not None)
    provenance = read_provenance(data)
    said = {
        "declared_verdict": provenance.declared_verdict,
        "provenance": provenance.summary,
        "c2pa": provenance.c2pa.state,
        "c2pa_signer": provenance.c2pa.signer,
        "c2pa_source_type": provenance.c2pa.digital_source_type,
        "iptc_source_type": provenance.iptc_digital_source_type,
        "generator": provenance.generator,
    }
    rows = []
    # prediction.faces has one entry for the whole image when no face is found; each face's own JSON (the API's)
    # decides what is shown, e.g. no probability where predict() judged nothing.
    for index, face in enumerate(prediction.faces):
        shown = face.to_json()
        heatmap = None
        if heatmaps_dir is not None and face.overlay is not None:
            from PIL import Image

            target = heatmap_path(heatmaps_dir, file, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(face.overlay).save(target)
            heatmap = str(target)
        rows.append(
            {
                "file": file,
                "face_index": index,
                "face_found": prediction.face_found,
                "box": [int(v) for v in shown["box"]],
                "crop_box": [int(v) for v in shown["crop_box"]],
                "fake_probability": None if shown["fake_probability"] is None else round(float(shown["fake_probability"]), PROBABILITY_DECIMALS),
                "verdict": shown["verdict"],
                "unlike_training": shown.get("unlike_training"),
                "image_verdict": prediction.verdict,
                **said,
                "model": prediction.model,
                "threshold": prediction.threshold,
                "heatmap": heatmap,
                "error": None,
            }
        )
    return rows


def error_row(file: str, reason: str, model: str, threshold: float) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(file=file, model=model, threshold=threshold, error=reason)
    return row


# ---------------------------------------------------------------------------------------------------- output files


def _cell(value) -> str:
    """One CSV cell; JSON Lines keeps the native types."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def encode_rows(rows: list[dict], format: str) -> str:
    """Rows as the text appended to an output file (complete lines only)."""
    if format == "jsonl":
        return "".join(json.dumps({column: row[column] for column in COLUMNS}) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([[_cell(row[column]) for column in COLUMNS] for row in rows])
    return buffer.getvalue()


def header(format: str) -> str:
    return ",".join(COLUMNS) + "\n" if format == "csv" else ""


def repair(path: Path) -> None:
    """Cut a half-written last line (the process died mid-write): everything up to the last newline is complete."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def read_rows(path: Path, format: str) -> list[dict]:
    """Rows of an output file (CSV cells as text, JSON Lines as written); a half-written last line is ignored."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    text = text[: text.rfind("\n") + 1]
    if format == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    records = list(csv.reader(io.StringIO(text)))
    if not records:
        return []
    if tuple(records[0]) != COLUMNS:
        raise ValueError(
            f"{path} is not a scan output of this version (its columns are {records[0][:4]}...); "
            "choose another --output or delete it."
        )
    return [dict(zip(COLUMNS, record)) for record in records[1:]]


def append(path: Path, text: str) -> None:
    """Append complete lines and flush them to the OS at once, so a killed process leaves at most one partial line."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()


def shard_path(output: Path, rank: int, world_size: int) -> Path:
    return output.with_name(f"{output.name}.part-{rank}-of-{world_size}")


def shard_paths(output: Path) -> list[Path]:
    """Shards left by any run (of any process count) that wrote to `output`, in a fixed order."""
    return sorted(output.parent.glob(f"{output.name}.part-*-of-*"))


def check_compatible(rows: list[dict], model: str, threshold: float, source: Path) -> None:
    """Refuse to mix rows of another model or threshold into one output."""
    for row in rows[:1] + rows[-1:]:
        if _cell(row["model"]) != _cell(model) or _cell(row["threshold"]) != _cell(threshold):
            raise ValueError(
                f"{source} holds rows from model {row['model']!r} at threshold {row['threshold']}, not {model!r} at "
                f"{threshold}; pass the same --model and --threshold to resume it, or choose another --output."
            )


def merge(output: Path, files: list[str], format: str) -> list[dict]:
    """Rewrite `output` with its rows and every shard's, grouped by photo in `files` order; delete the shards.

    Photos not in `files` (from an earlier scan of other paths) keep their place before the others. Written to a
    temporary file and renamed, so a kill during the merge leaves the output and the shards as they were.
    """
    order = {file: position for position, file in enumerate(files)}
    groups: dict[str, list[dict]] = {}
    sources = [output, *shard_paths(output)]
    for source_index, source in enumerate(sources):
        seen_here = set()
        for row in read_rows(source, format):
            file = row["file"]
            if file in groups and file not in seen_here:
                continue  # the same photo in two sources (cannot happen in one run): keep the first
            seen_here.add(file)
            groups.setdefault(file, []).append(row)
    ranked = sorted(groups, key=lambda file: order.get(file, -1))  # sorted() is stable: unknown photos keep their order
    rows = [row for file in ranked for row in groups[file]]
    temporary = output.with_name(output.name + ".merging")
    temporary.write_text(header(format) + encode_rows(rows, format), encoding="utf-8")
    os.replace(temporary, output)
    for shard in sources[1:]:
        shard.unlink()
    return rows


# ---------------------------------------------------------------------------------------------------- progress


def format_seconds(seconds: float) -> str:
    """0:07, 12:34 or 1:02:03."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainProgress:
    """tqdm's `update`/`close` for a stream that is not a terminal: newline-terminated lines such as
    `scan: 19/368 images (5%), elapsed 0:41, ETA 12:33, 0.46 images/s`, one when at least `every_percent` of the total
    and at least `every_seconds` have passed since the last line (whichever is sparser), and one at the end."""

    def __init__(self, total: int, desc: str = "scan", stream=None, every_percent: float = PROGRESS_PERCENT,
                 every_seconds: float = PROGRESS_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.stream = total, desc, stream if stream is not None else sys.stderr
        self.every_count = max(1, int(total * every_percent / 100.0 + 0.999999))  # photos between lines, at least 1
        self.every_seconds, self.clock = every_seconds, clock
        self.start = self.last_time = clock()
        self.n = self.last_n = 0
        self.closed = False

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        elapsed = self.clock() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * self.n / self.total if self.total else 100.0
        text = f"{self.desc}: {self.n}/{self.total} images ({percent:.0f}%), elapsed {format_seconds(elapsed)}"
        if self.n < self.total:
            text += f", ETA {format_seconds((self.total - self.n) / rate) if rate > 0 else '?'}"
        return text + f", {rate:.2f} images/s"

    def write(self) -> None:
        self.last_n, self.last_time = self.n, self.clock()
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def update(self, count: int = 1) -> None:
        self.n += count
        if self.n >= self.total:
            return  # the last line is close()'s
        if self.n - self.last_n >= self.every_count and self.clock() - self.last_time >= self.every_seconds:
            self.write()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n != self.last_n or self.n == 0:
                self.write()


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, count: int = 1) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool = True, stream=None):
    """tqdm's bar on a terminal, PlainProgress lines anywhere else (a file, a pipe, a CI log), nothing if not enabled."""
    if not enabled:
        return _NoProgress()
    stream = stream if stream is not None else sys.stderr
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        terminal = False
    if not terminal:
        return PlainProgress(total, desc, stream)
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=" images", desc=desc, dynamic_ncols=True, file=stream)


# ---------------------------------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """Who this process is among the scan's processes, and how to wait for the others."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = lambda: None

    @classmethod
    def from_environment(cls) -> "Processes":
        """One process, or accelerate's PartialState when a launcher started several (WORLD_SIZE > 1).

        accelerate is imported only then: it is a training dependency, not one of the scanner's.
        """
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        try:
            import torch
            from accelerate import PartialState
        except ImportError as error:
            raise RuntimeError(f"WORLD_SIZE > 1 needs accelerate to coordinate the processes: pip install accelerate ({error})") from None
        # cpu=True makes PartialState set up gloo when there is no GPU (its default wants one for WORLD_SIZE > 1).
        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(rank=state.process_index, world_size=state.num_processes, barrier=state.wait_for_everyone)


# ---------------------------------------------------------------------------------------------------- the scan


def scan(
    paths: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    detector,
    threshold: float | None = None,
    heatmaps_dir: str | os.PathLike | None = None,
    format: str | None = None,
    processes: Processes | None = None,
    progress: bool = True,
) -> ScanSummary:
    """Scan `paths` into `output`, resuming it if it exists; returns what this run did (see the module docstring)."""
    processes = processes or Processes()
    rank, world_size = processes.rank, processes.world_size
    output = Path(output)
    format = infer_format(output, format)
    heatmaps_dir = Path(heatmaps_dir) if heatmaps_dir is not None else None
    threshold_used = detector.threshold if threshold is None else float(threshold)
    if not 0.0 <= threshold_used <= 1.0:
        raise ValueError(f"--threshold must be between 0 and 1, got {threshold_used}.")
    files = list_images(paths)
    if heatmaps_dir is not None:  # heatmaps written inside a scanned folder are not photos to scan on the next run
        inside = heatmaps_dir.resolve()
        files = [file for file in files if not Path(file).resolve().is_relative_to(inside)]
    target = output if world_size == 1 else shard_path(output, rank, world_size)

    # 1. The main process cuts half-written lines everywhere; 2. everyone reads what is done; 3. everyone scans.
    # The barriers keep a process from reading a file that another is still repairing or already appending to.
    if rank == 0:
        output.parent.mkdir(parents=True, exist_ok=True)
        for path in [output, *shard_paths(output)]:
            repair(path)
    processes.barrier()
    done: set[str] = set()
    for source in [output, *shard_paths(output)]:
        rows = read_rows(source, format)
        check_compatible(rows, detector.name, threshold_used, source)
        done.update(row["file"] for row in rows)
    processes.barrier()
    todo_by_rank = [[file for file in files[r::world_size] if file not in done] for r in range(world_size)]
    todo = todo_by_rank[rank]
    if not target.is_file() or target.stat().st_size == 0:
        target.write_text(header(format), encoding="utf-8")

    start = time.perf_counter()
    bar = progress_bar(len(todo), "scan" if world_size == 1 else f"scan (process 0 of {world_size})", progress and rank == 0)
    with bar:
        for file in todo:
            append(target, encode_rows(scan_file(file, detector, threshold_used, heatmaps_dir), format))
            bar.update(1)
    processes.barrier()
    seconds = time.perf_counter() - start

    scanned = {file for files_of_rank in todo_by_rank for file in files_of_rank}
    faces = unreadable = 0
    if rank == 0:
        for row in merge(output, files, format):
            if row["file"] in scanned:
                if _cell(row["error"]):
                    unreadable += 1
                else:
                    faces += 1
    processes.barrier()  # nobody leaves (and a launcher tears down) before the output is whole
    return ScanSummary(
        files=len(files),
        skipped=sum(file in done for file in files),
        scanned=len(scanned),
        faces=faces,
        unreadable=unreadable,
        seconds=seconds,
        processes=world_size,
    )
