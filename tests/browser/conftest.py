"""Browser test harness: the real dashboard in headless Chromium, driven by Playwright.

``app_url`` starts ``streamlit run app.py`` on a free port with a temporary database (created
with the demo content, as a user would see it) and yields its address. Chromium comes from
Debian (``/usr/bin/chromium``; ``.ci/run`` installs it); without it these tests skip with a
clear reason. Screenshots go to ``test-artifacts/`` (``shot(page, name)``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PROMPTVER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One lane: every browser test goes to the same xdist worker and runs after the other, while
    # the rest of the suite runs on the other workers. Two dashboards and two Chromiums at once
    # on a small CI machine made page waits time out that pass alone.
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install Debian's chromium "
            "(apt-get install chromium) to run the browser tests"
        )
    return {
        "executable_path": CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
        "headless": True,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {
        **browser_context_args,
        "viewport": {"width": 1400, "height": 1000},
        "accept_downloads": True,
    }


#: how long any wait on the page may take (Playwright actions, ``expect``, ``wait_idle``): on a
#: loaded 2-core CI machine one Streamlit rerun has been seen to take 20 s; a correct test must
#: not fail there, and a wrong one still fails (after this long) with the condition it waited on
TIMEOUT = 90_000
#: the first visit to a fresh server builds the demo workspace before drawing anything
FIRST_VISIT = 150_000


@pytest.fixture(autouse=True)
def _patient_browser(request: pytest.FixtureRequest) -> None:
    """Generous, uniform timeouts: CI machines are small and Streamlit reruns under load take
    seconds. Tests wait on conditions with these defaults rather than their own numbers."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT)
    if "page" in request.fixturenames:
        page = request.getfixturevalue("page")
        page.set_default_timeout(TIMEOUT)
        page.set_default_navigation_timeout(FIRST_VISIT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db: Path, extra_env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "PROMPTVER_DB": str(db),
        "PYTHONPATH": str(ROOT),
        "PROMPTVER_AUTHOR": "browser-tester",
        **(extra_env or {}),
    }
    log = open(db.with_suffix(".log"), "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {db.with_suffix('.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("streamlit did not start within 120 s")


@pytest.fixture
def app_url(tmp_path: Path, browser_type_launch_args: dict) -> Iterator[str]:
    proc, url = start_app(tmp_path / "browser.duckdb")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


#: done: connected, the script not running, and app.py's shared sidebar drawn by this run. The
#: frontend leaves "notRunning" for "rerunRequested" as soon as a widget asks for a rerun, so a
#: wait right after a click does not see the previous run's state; the fresh sidebar covers the
#: rerun the app makes by itself when a deep link is the first visit to a server (the page runs
#: alone, then app.py: ui.common._leave_pages_folder_mode), with "notRunning" in between
IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testConnectionState !== "CONNECTED"
      || app.dataset.testScriptState !== "notRunning") return false;
  const sidebar = document.querySelectorAll(
    '[data-testid="stSidebar"] [data-testid="stElementContainer"]');
  return [...sidebar].some((e) => e.dataset.stale !== "true" && e.innerText.includes("Database:"));
}"""


def wait_idle(page, timeout: float = TIMEOUT) -> None:
    """Wait until Streamlit finished running the script, then fail on any exception box."""
    page.wait_for_function(IDLE, timeout=timeout)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
