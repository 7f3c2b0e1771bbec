"""The app's upload lifecycle: every uploaded file has one owner, one reader and one deletion.

Gradio stores an upload at `<upload folder>/<content hash>/<name>`, so two visitors who send the same bytes share
one path and the first request to finish would delete the other's photo. `install_gradio_hook` gives every upload
a private folder of its own (`u-<random>/<name>`) the moment Gradio has written it, and records it here:

* a handler may only read a path that this ledger issued (or a bundled example): never a path a client names;
* a read takes the bytes into memory and schedules the file's deletion (`keep_for` seconds later, so the
  browser's preview of the photo can still load), after which the path is gone for everyone;
* uploads that no request reads, and partial multipart files of dropped connections, are swept after
  `UNCLAIMED_TTL_S`; the per-process folder is removed at exit and folders of dead processes at the next start.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Largest upload accepted (also Gradio's upload limit, so larger files are refused while they stream in).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# The browser page's own upload stays this long after its request, so that the photo's preview can still load.
PREVIEW_KEEP_S = 10.0
# An upload that no request has read after this long is deleted (a queued request waits far less than this).
UNCLAIMED_TTL_S = 120.0
# Partial multipart files (Gradio's `tmp*` while a file streams in) that have not grown for this long are dropped.
STALLED_UPLOAD_S = 30.0
SWEEP_INTERVAL_S = 1.0
PROCESS_FOLDER_PREFIX = "app-"
LOCK_NAME = ".owner.lock"


class UploadError(ValueError):
    """A file reference a handler cannot use; the message is written for a person and names no server path."""


# One sentence for every file reference a handler cannot use, so that a reply never tells whether some path exists.
NOT_AVAILABLE = (
    "This file is not an upload of this request, or it was already deleted (uploads are deleted once read). "
    "Please upload the image again (gradio_client: handle_file(path))."
)


@dataclass
class _Upload:
    created: float
    delete_at: float | None = None  # set by the first read


class UploadLedger:
    """Uploads issued by this process, keyed by their absolute path string. Thread-safe."""

    def __init__(
        self,
        folder: str | os.PathLike,
        max_bytes: int = MAX_UPLOAD_BYTES,
        ttl: float = UNCLAIMED_TTL_S,
        stalled: float = STALLED_UPLOAD_S,
    ):
        self.folder = Path(folder).resolve()
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.stalled = stalled
        self._uploads: dict[str, _Upload] = {}
        self._keep: list[set[str]] = []  # Gradio's keep_in_cache sets: the examples' cached copies (readable, never deleted)
        self._lock = threading.Lock()
        self.forget_hooks: list = []  # callables(path) told when a path is deleted (Gradio's own upload set)

    # ------------------------------------------------------------ issuing

    def keep(self, paths: set[str]) -> None:
        """Files (bundled examples) that handlers may read and nobody deletes; a live set, read at each use."""
        self._keep.append(paths)

    def _kept(self, path: str) -> bool:
        return any(path in paths for paths in self._keep)

    def adopt(self, path: str | os.PathLike) -> str:
        """Move a file Gradio has just written into a private folder of its own; returns the path to hand out."""
        source = Path(path)
        if self._kept(str(source)):
            return str(source)  # a visitor sent an example's exact bytes: Gradio wrote it over the example's copy
        target_dir = self.folder / f"u-{secrets.token_hex(16)}"
        target_dir.mkdir(parents=True)
        target = target_dir / source.name
        os.rename(source, target)
        try:
            source.parent.rmdir()  # Gradio's content-hash folder, empty unless another upload is landing in it
        except OSError:
            pass
        with self._lock:
            self._uploads[str(target)] = _Upload(created=time.monotonic())
        return str(target)

    # ------------------------------------------------------------ reading

    def read(self, path: object, keep_for: float = 0.0) -> bytes:
        """The bytes of an upload this ledger issued; its file is deleted `keep_for` seconds from now.

        Raises UploadError for anything else: a path it did not issue, a deleted upload, not a regular file,
        too large. The message never says whether some other path exists.
        """
        if not isinstance(path, str) or not path:
            raise UploadError(NOT_AVAILABLE)
        kept = self._kept(path)
        with self._lock:
            upload = self._uploads.get(path)
            if upload is None and not kept:
                raise UploadError(NOT_AVAILABLE)
            if upload is not None:
                due = time.monotonic() + max(0.0, keep_for)
                upload.delete_at = due if upload.delete_at is None else min(upload.delete_at, due)
        try:
            data = _read_regular_file(path, self.max_bytes)
        finally:
            if upload is not None and keep_for <= 0:
                self._delete(path)
        return data

    def discard(self, path: object) -> None:
        """Delete an upload a request was sent but will not read (a batch refused before reading its items)."""
        if isinstance(path, str) and path in self._uploads:
            self._delete(path)

    # ------------------------------------------------------------ deleting

    def _delete(self, path: str) -> None:
        with self._lock:
            self._uploads.pop(path, None)
        file = Path(path)
        try:
            file.unlink()
        except FileNotFoundError:
            pass
        try:
            file.parent.rmdir()
        except OSError:
            pass
        for hook in self.forget_hooks:
            hook(path)

    def pending(self) -> int:
        with self._lock:
            return len(self._uploads)

    def sweep(self, now: float | None = None) -> int:
        """Delete uploads whose time has come, unread ones past the TTL and stalled partial files; returns the count."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [p for p, u in self._uploads.items() if (u.delete_at is not None and u.delete_at <= now) or now - u.created > self.ttl]
        for path in due:
            self._delete(path)
        removed = len(due)
        wall = time.time()
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return removed
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            # Gradio's multipart temp files (dropped or stalled uploads; oversized ones it refused).
            if entry.name.startswith("tmp") and stat.S_ISREG(info.st_mode) and wall - info.st_mtime > self.stalled:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
            # Content-hash folders emptied by adopt() while another upload was landing in them.
            elif stat.S_ISDIR(info.st_mode) and _is_content_hash(entry.name) and wall - info.st_mtime > self.stalled:
                try:
                    os.rmdir(entry.path)
                except OSError:
                    pass
        return removed

    def start_sweeper(self, interval: float = SWEEP_INTERVAL_S) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(interval)
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - the sweeper must outlive any one odd file
                    pass

        thread = threading.Thread(target=loop, name="upload-sweeper", daemon=True)
        thread.start()
        return thread


def _is_content_hash(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _read_regular_file(path: str, max_bytes: int) -> bytes:
    """Read a regular file without following a symlink, refusing devices, FIFOs and files over `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UploadError(NOT_AVAILABLE) from None
        raise UploadError(NOT_AVAILABLE) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UploadError(NOT_AVAILABLE)
        if info.st_size > max_bytes:
            raise UploadError(too_large_message(info.st_size, max_bytes))
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UploadError(too_large_message(len(data), max_bytes))
    return data


def too_large_message(size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    return f"The file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. Please upload a smaller image."


# ---------------------------------------------------------------- the per-process folder

_HELD_LOCKS: list = []  # open lock files of this process's folders: closing one would release its lock


def process_folder(root: str | os.PathLike) -> Path:
    """A new folder for this process's uploads under `root`, locked for as long as the process lives.

    Folders under `root` whose owner died (SIGKILL, power loss: their lock is free) are removed first."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sweep_dead_process_folders(root)
    folder = root / f"{PROCESS_FOLDER_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o700)
    lock = open(folder / LOCK_NAME, "w")  # noqa: SIM115 - held open until the process ends
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD_LOCKS.append(lock)
    return folder


def sweep_dead_process_folders(root: str | os.PathLike) -> list[Path]:
    """Remove `root/app-*` folders whose owning process is gone (its lock can be taken); returns them."""
    removed = []
    for folder in sorted(Path(root).glob(f"{PROCESS_FOLDER_PREFIX}*")):
        if not folder.is_dir() or folder.is_symlink():
            continue
        lock_path = folder / LOCK_NAME
        try:
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while the owner lives
        except BlockingIOError:
            continue
        except OSError:
            pass  # no lock file: a folder from before locks existed, or half created; its owner cannot be asked
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def remove_folder(folder: str | os.PathLike) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- Gradio


def install_gradio_hook(ledger: UploadLedger) -> None:
    """Route every file Gradio's upload endpoint writes through `ledger.adopt` (unique path per upload).

    Gradio 6's `/gradio_api/upload` route calls `gradio.routes.upload_fn`, which writes each file to a content-hash
    path. The wrapper runs in the event loop right after it, with no await in between, so no other upload can land
    on the same path before the file is moved. tests/test_security.py fails if a Gradio upgrade bypasses this.
    """
    import gradio.routes as routes

    original = getattr(routes.upload_fn, "__wrapped_upload_fn__", routes.upload_fn)

    async def upload_fn(request, upload_dir, max_file_size, upload_id, force_move: bool = True, upload_progress=None):
        output_files, files_to_copy, locations = await original(
            request, upload_dir, max_file_size, upload_id, force_move=True, upload_progress=upload_progress
        )
        return [ledger.adopt(path) for path in output_files], files_to_copy, locations

    upload_fn.__wrapped_upload_fn__ = original
    routes.upload_fn = upload_fn
