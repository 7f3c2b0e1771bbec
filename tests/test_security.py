"""The app as a hostile client sees it, over real HTTP: no server file readable through any endpoint (private ones
included), identical uploads from concurrent clients all succeed, no upload left on disk whatever the outcome,
security headers, no server path in replies, and a broken model stops the start."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import REPO_ROOT, AppProcess, upload_files

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

MARKER = "secret-marker-7d2e90"
ENV_SECRET = "env-secret-3f9a1c"  # set in the live app's environment by conftest: /proc/self/environ would show it
FILE_META = {"_type": "gradio.FileData"}


def call(url: str, api_name: str, data: list, timeout: float = 60) -> str:
    """POST /gradio_api/call/NAME, then read the event stream: the raw text a client gets back."""
    response = requests.post(f"{url}gradio_api/call/{api_name}", json={"data": data}, timeout=timeout)
    if response.status_code != 200:
        return f"HTTP {response.status_code} {response.text}"
    event_id = response.json()["event_id"]
    return requests.get(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=timeout).text


def wait_until_empty(live_app, timeout: float = 15.0) -> set[Path]:
    """Poll until the upload folder holds nothing but the baseline (the examples); returns what is left."""
    deadline = time.monotonic() + timeout
    while True:
        left = live_app["files"]() - live_app["baseline"]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


@pytest.fixture(scope="module")
def config(live_app) -> dict:
    return requests.get(live_app["url"] + "config", timeout=30).json()


@pytest.fixture(scope="module")
def upload_folder(live_app) -> Path:
    (folder,) = [p for p in live_app["temp_dir"].iterdir() if p.name.startswith("app-")]
    return folder


@pytest.fixture(scope="module")
def outside(tmp_path_factory, faces_dir, upload_folder) -> dict[str, str]:
    """Files the server can read but must never serve: a secret, a face photo, a symlink planted in the upload folder."""
    folder = tmp_path_factory.mktemp("outside")
    secret = folder / "secret.txt"
    secret.write_text(f"{MARKER}\n")
    face = folder / "face.png"
    shutil.copy(faces_dir / "real/ffhq/bhunakit_r0.png", face)
    return {
        "secret": str(secret),
        "face": str(face),
        "symlink": str(upload_folder / "u-planted" / "face.png"),  # planted by the test that uses it
        "dotdot": f"{upload_folder}/../../../../../../../..{secret}",
        "missing": str(folder / "does-not-exist.png"),
        "dev_zero": "/dev/zero",
        "environ": "/proc/self/environ",
        "repo_file": str(REPO_ROOT / "examples" / "astronaut.jpg"),
    }


def payloads(path: str) -> dict[str, object]:
    return {
        "filedata": {"path": path},
        "filedata_meta": {"path": path, "meta": FILE_META, "orig_name": "x.png"},
        "string": path,
        "list": [{"path": path, "meta": FILE_META}],
        "url": {"url": f"file://{path}", "path": path, "meta": FILE_META},
    }


def endpoint_defaults(config: dict, dependency: dict) -> list:
    components = {c["id"]: c for c in config["components"]}
    defaults = []
    for component_id in dependency["inputs"]:
        kind = components[component_id]["type"]
        props = components[component_id].get("props", {})
        if kind in ("slider", "number"):
            defaults.append(0.5)
        elif kind == "checkbox":
            defaults.append(False)
        elif kind == "file" and props.get("file_count") == "multiple":
            defaults.append([])
        else:
            defaults.append(None)
    return defaults


def test_every_endpoint_is_probed(config):
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"predict", "predict_batch", "detect_ui"} <= names  # private ones are in /config, hence callable


def leaks(reply: str) -> list[str]:
    found = [word for word in (MARKER, ENV_SECRET, "face_found", "data:image", "fake_probability") if word in reply]
    return found


def test_no_endpoint_reads_a_server_path(live_app, config, outside):
    """Every path payload, at every input of every endpoint: no content, no result, and the reply for an existing
    file is the reply for a missing one (so it does not tell existence)."""
    url = live_app["url"]
    failures = []
    link = Path(outside["symlink"])
    link.parent.mkdir()
    link.symlink_to(outside["face"])
    try:
        _probe_all(url, config, outside, failures, probed_counter := [0])
    finally:
        shutil.rmtree(link.parent)
    assert probed_counter[0] > 200
    assert not failures, failures[:5]


def _probe_all(url: str, config: dict, outside: dict, failures: list, probed: list) -> None:
    for dependency in config["dependencies"]:
        name = dependency.get("api_name")
        if not name or not dependency["inputs"]:
            continue
        defaults = endpoint_defaults(config, dependency)
        for position in range(len(defaults)):
            for target in ("secret", "face", "symlink", "dotdot", "dev_zero", "environ", "repo_file"):
                for shape, payload in payloads(outside[target]).items():
                    data = list(defaults)
                    data[position] = payload
                    reply = call(url, name, data)
                    probed[0] += 1
                    if leaks(reply):
                        failures.append((name, position, target, shape, leaks(reply), reply[:200]))
                    # Same request with a path that does not exist: the reply must not differ beyond the path itself.
                    missing = list(defaults)
                    missing[position] = payloads(outside["missing"])[shape]
                    other = call(url, name, missing).replace(outside["missing"], "PATH")
                    if reply.replace(outside[target], "PATH") != other:
                        failures.append((name, position, target, shape, "tells existence", reply[:200], other[:200]))


@pytest.mark.parametrize("route", ["gradio_api/file={}", "file={}", "gradio_api/file={}?x=1", "gradio_api/proxy={}"])
@pytest.mark.parametrize("target", ["secret", "dotdot", "environ", "face", "repo_file"])
def test_file_routes_serve_no_server_file(live_app, outside, route, target):
    response = requests.get(live_app["url"] + route.format(outside[target]), timeout=30)
    assert response.status_code != 200 or not (MARKER in response.text or ENV_SECRET in response.text or response.content[:4] == b"\x89PNG")


def test_dev_zero_does_not_exhaust_memory(live_app):
    before = _rss(live_app)
    for shape, payload in payloads("/dev/zero").items():
        call(live_app["url"], "predict", [payload, None, False])
        call(live_app["url"], "detect_ui", [payload, 0.5, None])
    assert _rss(live_app) < before + 200_000_000


def _rss(live_app) -> int:
    pid = live_app["process"].process.pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------- uploads: private, concurrent, deleted


def test_identical_uploads_get_private_paths(live_app, faces_dir):
    """Gradio stores uploads by content hash; the app must give each upload its own path (fails if an upgrade
    of Gradio bypasses deepfake_detector.uploads.install_gradio_hook)."""
    photo = (faces_dir / "real/ffhq/bhunakit_r0.png").read_bytes()
    paths = []
    for _ in range(2):
        response = requests.post(live_app["url"] + "gradio_api/upload", files={"files": ("same.png", photo, "image/png")}, timeout=30)
        assert response.status_code == 200, response.text
        paths += response.json()
    assert len(set(paths)) == 2 and all(Path(p).name == "same.png" for p in paths)
    assert not wait_until_empty(live_app), "uploads that no request reads must be swept (UPLOAD_TTL_S)"


def test_same_photo_from_eight_clients_at_once(live_app, faces_dir):
    path = str(faces_dir / "real/celebahq" / sorted(os.listdir(faces_dir / "real/celebahq"))[0])
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def visitor() -> None:
        client = Client(live_app["url"], verbose=False)
        barrier.wait()
        try:
            outcomes.append(client.predict(handle_file(path), api_name="/predict")["verdict"])
        except Exception as error:  # noqa: BLE001 - recorded and asserted below
            outcomes.append(f"failed: {error}")

    threads = [threading.Thread(target=visitor) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(outcomes) == 8 and not [o for o in outcomes if o.startswith("failed")], outcomes
    assert len(set(outcomes)) == 1  # the same photo, the same verdict
    assert not wait_until_empty(live_app)
    # Nothing at all left behind, empty multipart temp files included (only the examples and the owner lock stay).
    everything = {p for p in live_app["temp_dir"].rglob("*") if p.is_file() and p.name != ".owner.lock"}
    assert everything == live_app["baseline"], sorted(map(str, everything - live_app["baseline"]))


def test_same_batch_item_twice(live_app, faces_dir):
    photo = handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png"))
    results = Client(live_app["url"], verbose=False).predict([photo, photo, photo], api_name="/predict_batch")
    assert [("error" in r) for r in results] == [False, False, False], results


@pytest.fixture()
def client(live_app) -> Client:
    return Client(live_app["url"], verbose=False)


def test_nothing_left_after_success(live_app, client, faces_dir):
    client.predict(handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), include_overlay=True, api_name="/predict")
    assert not wait_until_empty(live_app, timeout=3)


def test_nothing_left_after_decode_error(live_app, client, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg" * 50)
    with pytest.raises(AppError, match="damaged|not an image"):
        client.predict(handle_file(str(bad)), api_name="/predict")
    assert not wait_until_empty(live_app, timeout=3)


@pytest.mark.parametrize("threshold", [1.5, "abc", [0.5], True])
def test_nothing_left_after_bad_threshold(live_app, client, faces_dir, threshold):
    with pytest.raises(AppError, match="threshold must be"):
        client.predict(handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), threshold=threshold, api_name="/predict")
    assert not wait_until_empty(live_app, timeout=3)


def test_nothing_left_after_client_disconnects(live_app, faces_dir):
    """A client that uploads, starts a request and goes away without reading the result."""
    photo = (faces_dir / "real/ffhq/bhunakit_r0.png").read_bytes()
    (path,) = requests.post(live_app["url"] + "gradio_api/upload", files={"files": ("gone.png", photo)}, timeout=30).json()
    requests.post(live_app["url"] + "gradio_api/call/predict", json={"data": [{"path": path, "meta": FILE_META}, None, False]}, timeout=30)
    assert not wait_until_empty(live_app)


def test_nothing_left_after_upload_cut_mid_stream(live_app):
    """A multipart upload whose connection drops half way: the partial file is dropped once it stalls."""
    host, port = "127.0.0.1", int(live_app["url"].rsplit(":", 1)[1].strip("/"))
    body = b"--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"cut.jpg\"\r\n\r\n" + b"\xff" * 200_000
    head = f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {len(body) * 3}\r\n\r\n"
    with socket.create_connection((host, port)) as sock:
        sock.sendall(head.encode() + body)
        time.sleep(1.0)
    assert not wait_until_empty(live_app, timeout=20)


def test_oversized_upload_refused_before_reaching_disk(live_app):
    big = b"\xff\xd8" + b"\0" * (21 * 1024 * 1024)
    response = requests.post(live_app["url"] + "gradio_api/upload", files={"files": ("big.jpg", big)}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert not wait_until_empty(live_app, timeout=20)


# ---------------------------------------------------------------- headers and paths


@pytest.mark.parametrize("route", ["", "config", "gradio_api/info", "gradio_api/file=/etc/hostname"])
def test_security_headers(live_app, route):
    response = requests.get(live_app["url"] + route, timeout=30)
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert "frame-ancestors" in response.headers.get("content-security-policy", "")
    assert response.headers.get("referrer-policy")


def test_no_server_path_in_page_model_tab_or_errors(live_app, client, model_dir, tmp_path):
    # The Model tab's texts are component values in /config (filled in before launch).
    texts = [requests.get(live_app["url"] + route, timeout=30).text for route in ("", "config", "gradio_api/info")]
    assert "balanced accuracy" in texts[1]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(AppError) as error:
        client.predict(handle_file(str(bad)), api_name="/predict")
    texts.append(str(error.value))
    for text in texts:
        for path in (str(REPO_ROOT), str(model_dir.resolve()), str(Path.home()) + "/"):
            assert path not in text, f"{path} appears in a reply"


# ---------------------------------------------------------------- process lifecycle


def test_sigterm_removes_uploads_and_start_sweeps_dead_folders(model_dir, tmp_path, faces_dir):
    root = tmp_path / "uploads"
    dead = root / "app-999999-deadbeef" / "u-0123" / "photo.jpg"  # left by a killed process (its lock is free)
    dead.parent.mkdir(parents=True)
    dead.write_bytes(b"a visitor's photo")
    (root / "app-999999-deadbeef" / ".owner.lock").touch()
    app = AppProcess(model_dir, root, tmp_path / "app.log").wait_ready()
    try:
        assert not dead.exists(), "the dead process's folder must be swept at start"
        (own,) = list(root.glob("app-*"))
        photo = (faces_dir / "real/ffhq/bhunakit_r0.png").read_bytes()
        requests.post(app.url + "gradio_api/upload", files={"files": ("kept.png", photo)}, timeout=30).raise_for_status()
        assert upload_files(own), "the upload should be on disk before SIGTERM"
    finally:
        code = app.stop()  # SIGTERM
    assert code == 0, app.log()[-2000:]
    assert not list(root.glob("app-*")), "SIGTERM must remove the process's upload folder"


def _corrupt(model_dir: Path, folder: Path) -> Path:
    shutil.copy(model_dir / "config.json", folder / "config.json")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + b"\0" * 100)
    return folder


def _pickle_only(model_dir: Path, folder: Path) -> Path:
    shutil.copy(model_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    return folder


@pytest.mark.parametrize("make", [lambda m, f: f / "missing", _corrupt, _pickle_only], ids=["missing", "corrupt", "pickle_only"])
def test_unloadable_model_stops_the_start(model_dir, tmp_path, make):
    folder = tmp_path / "model"
    folder.mkdir()
    app = AppProcess(make(model_dir, folder), tmp_path / "uploads", tmp_path / "app.log")
    try:
        code = app.process.wait(timeout=120)
    finally:
        app.stop()
    assert code != 0
    assert "could not be loaded" in app.log()
    assert not list((tmp_path / "uploads").glob("app-*/*/*")), "nothing should be left by a failed start"


def test_examples_are_readable_and_survive(live_app, config):
    """A bundled example (Gradio's cached copy, in the upload folder) is analysed, and stays for the next visitor."""
    (dataset,) = [c for c in config["components"] if c["type"] == "dataset"]
    example = dataset["props"]["samples"][0][0]
    for _ in range(2):
        reply = call(live_app["url"], "detect_ui", [example, 0.5, None])
        assert "Verdict:" in reply, reply[:300]
    assert Path(example["path"]).is_file()
