"""A real JupyterLab and a headless Chromium that drives it (issue 11).

Theory of operation
-------------------
* ``lab`` (session): copies ``chapters/`` to a temporary root and serves it with
  ``python -m jupyter lab`` on 127.0.0.1, a port the OS chose and a random token, with
  ``COURSE_FAST=1`` and the repository first on ``PYTHONPATH`` (the kernel imports this
  checkout's ``mini_server``).  Serving a copy means a run can never leave outputs in the
  committed notebooks; autosave is off as well.  Jupyter's config, runtime, settings and
  workspace folders are temporary too, so neither the machine's settings nor an earlier run
  change what the test sees.  Notebook windowing is ``none`` so every cell and output is in the
  DOM (the default attaches off-screen cells lazily).  ``expose_app_in_browser`` lets a test
  read the notebook model (output types) besides the rendered DOM.
* ``browser`` (session): Playwright's sync API launching the OS Chromium
  (``/usr/bin/chromium``, Debian's ``chromium`` package) headless; Playwright's own browser
  download is never used.
* ``page`` (function): a fresh page; on teardown every kernel session the test started is shut
  down through the REST API and the page closed.
* A failed test leaves a screenshot in ``tests/browser/artifacts/<test name>.png``.

Without Chromium or Playwright the tests skip with a message naming what is missing, except
in CI (``CI=true``), where a missing browser is a failure: CI must run them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lab_page import ARTIFACTS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 60.0  # seconds for JupyterLab to answer /api/status
STOP_TIMEOUT = 15.0  # seconds for it to exit after SIGTERM before it is killed

# Lab settings that make the page deterministic: all cells in the DOM, no autosave, no
# news or update toasts over the notebook, no restart confirmation dialog.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension/sessionDialogs": {"skipKernelRestartDialog": True},
}


def in_ci() -> bool:
    """True when CI=true (or 1/yes): the browser tests must run, never skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.is_file():
        return (
            f"Chromium is missing: no {CHROMIUM} (install Debian's `chromium` package: "
            "apt-get install chromium)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing (pip install -r requirements-dev.txt)"
    return None


def require_browser() -> None:
    """Skip (locally) or fail (in CI) when the browser or Playwright is missing."""
    reason = missing_browser()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1 (JupyterLab binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: where it is, how to authenticate and what it serves."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def api(self, method: str, path: str, timeout: float = 10.0) -> object:
        """Call the REST API; the decoded JSON answer (None when the body is empty)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def notebook_url(self, relative: str) -> str:
        """The lab page that opens ``relative`` (a path under the served root) alone: ``reset``
        drops the saved workspace, so notebooks of earlier tests do not reopen (and start
        kernels) beside it."""
        return f"{self.url}/lab/tree/{relative}?reset&token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines JupyterLab wrote, for a failure message."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def shut_down_sessions(self) -> None:
        """Shut down every notebook session (and so its kernel)."""
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)


def write_settings(folder: Path) -> None:
    for plugin, values in SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def wait_until_ready(lab: Lab) -> None:
    """Poll /api/status until it answers; fail with the server's log if it never does."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {lab.process.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "/api/status", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # polling an external process that gives no readiness event
    pytest.fail(
        f"JupyterLab did not answer /api/status within {START_TIMEOUT:g} s:\n{lab.log_tail()}"
    )


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, wait (bounded), then SIGKILL: the server never outlives the session."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    require_browser()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    # A copy: running the chapters must never write outputs into the committed notebooks.
    shutil.copytree(
        ROOT / "chapters", root / "chapters", ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    settings = base / "settings"
    write_settings(settings)
    env = dict(os.environ)
    env.update(
        {
            "COURSE_FAST": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "JUPYTER_CONFIG_DIR": str(base / "config"),
            "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        }
    )
    token = secrets.token_hex(16)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=root,
        )
    handle = Lab(f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        wait_until_ready(handle)
        yield handle
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)  # every Playwright wait is bounded
    tab = context.new_page()
    try:
        yield tab
    finally:
        try:
            lab.shut_down_sessions()
        finally:
            context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed and "page" in item.funcargs:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", item.name)
        try:
            item.funcargs["page"].screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # the report must still say why the test failed
            report.sections.append(("screenshot", f"no screenshot: {exc!r}"))
    return report
