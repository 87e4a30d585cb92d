"""Helpers for the browser tests: the real app on a free port, Chromium's flags, and
small page actions (settle, go, screenshot). Fixtures are in `conftest.py`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from curation.auth import AUTH_ENV
from curation.config import PROJECT_ROOT

CHROMIUM = os.environ.get("ASSAY_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} never became healthy")


@contextmanager
def serve(
    store_url: str,
    tmp_path: Path,
    *,
    env: dict[str, str | None] | None = None,
    secrets: str | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """`streamlit run app.py` on a free port (or `port`) against `store_url`; yields the
    base URL. Sign-in is off (`ASSAY_AUTH=none`, as in the demo) unless `env` says
    otherwise (a value None removes a variable); `secrets` is the text of the server's
    secrets.toml (none by default)."""
    port = port or free_port()
    env = {
        **os.environ,
        "ASSAY_DATABASE_URL": store_url,
        "PYTHONPATH": str(PROJECT_ROOT),
        AUTH_ENV: "none",
        **(env or {}),
    }
    env = {name: value for name, value in env.items() if value is not None}
    secrets_file = tmp_path / f"secrets-{port}.toml"
    secrets_file.write_text(secrets or "")
    log = open(tmp_path / f"streamlit-{port}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(PROJECT_ROOT / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
            "--secrets.files",
            str(secrets_file),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def settle(page) -> None:
    """Wait until the app's script has finished its run."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    page.wait_for_timeout(300)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def go(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    settle(page)


def enter_reviewer(page, name: str) -> None:
    """Type a reviewer name in the sidebar and confirm it with Enter."""
    page.get_by_label("Reviewer name", exact=True).fill(name)
    page.get_by_label("Reviewer name", exact=True).press("Enter")
    settle(page)


def click_row(page, index: int) -> None:
    """Select a row of the (canvas-drawn) table: the selection column is the first
    ~30 px; rows are 35 px high under a 35 px header."""
    grid = page.get_by_test_id("stDataFrame").first.bounding_box()
    page.mouse.click(grid["x"] + 15, grid["y"] + 35 + 35 * (index + 0.5))


needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (make test installs it as root)"
)
