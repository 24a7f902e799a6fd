"""Servers and a headless browser for the UI tests: `mlflow server` and optuna-dashboard on 127.0.0.1,
Debian's chromium driven by Selenium through chromium-driver."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""Flags under which Debian's chromium runs headless here (no network but the loopback)."""
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(command: Sequence[str], url: str, log: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """Run a server in its own process group until ``url`` answers HTTP 200; stop that group on exit.

    Raises:
        RuntimeError: the server exited or did not answer within ``timeout_s`` (its log's tail).
    """
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "wb") as out:
        process = subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} did not answer {url}: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def mlflow_server(db: Path, artifacts: Path, log: Path) -> Iterator[str]:
    """``mlflow server`` (one worker) on a free port of 127.0.0.1 over an SQLite store; yields its URL."""
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{db}", "--default-artifact-root", str(artifacts)]
    with serve(command, f"http://127.0.0.1:{port}/health", log):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def optuna_dashboard(journal: Path, log: Path) -> Iterator[str]:
    """optuna-dashboard on a free port of 127.0.0.1 over a journal file; yields its URL."""
    port = free_port()
    command = [str(BIN / "optuna-dashboard"), "--host", "127.0.0.1", "--port", str(port), str(journal)]
    with serve(command, f"http://127.0.0.1:{port}/api/meta", log):
        yield f"http://127.0.0.1:{port}"


def have_chromium() -> bool:
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


@contextmanager
def chromium(width: int = 1600, height: int = 1000) -> Iterator[object]:
    """A headless Chromium (Selenium WebDriver) with a new empty profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="reprotune-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def close_assistant(driver) -> None:
    """Close MLflow's Assistant side panel when it is open (it hides a third of the page)."""
    for button in driver.find_elements("css selector", "button[aria-label='Close']"):
        if button.is_displayed():
            button.click()


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> object:
    """Poll ``condition`` until it returns something truthy (exceptions count as not yet).

    Raises:
        AssertionError: still false after ``timeout_s``, naming ``what``.
    """
    deadline, error = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as caught:  # noqa: BLE001 - the page is still loading
            error = caught
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}" + (f" ({error})" if error else ""))
