"""Screenshots of the app for the README, at phone and desktop size, from a bundled example photo (the OmniGen text-to-image face, MIT).

    python docs/screenshots.py   # starts app.py on a free port, writes docs/screenshot-{phone,desktop}.png

Needs Debian's chromium (`make browser`). Never use dev-corpus images here: they may not be redistributed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHOTO = ROOT / "examples" / "omnigen-woman-with-book.jpg"


def main() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as uploads:
        env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_TEMP_DIR": uploads}
        app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
        try:
            for _ in range(180):
                try:
                    urllib.request.urlopen(url, timeout=5).close()
                    break
                except OSError:
                    time.sleep(1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                for name, (width, height) in {"phone": (390, 844), "desktop": (1366, 900)}.items():
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(url)
                    page.locator("#dfd-input input[type=file]").set_input_files(str(PHOTO))
                    page.locator("#dfd-summary").get_by_text("Verdict:").wait_for(timeout=90_000)
                    page.wait_for_timeout(1000)
                    page.screenshot(path=str(ROOT / "docs" / f"screenshot-{name}.png"))
                    print("wrote", ROOT / "docs" / f"screenshot-{name}.png")
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)


if __name__ == "__main__":
    main()
