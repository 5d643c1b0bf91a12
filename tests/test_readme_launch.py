"""The README's first command, run for real: one JupyterLab serves chapters and exercises.

A learner's first command opens chapter 00; its links go to `../exercises/...`. If JupyterLab
were rooted at `chapters/`, those links would be "outside root contents directory". This test
starts the command's JupyterLab headless on a port the OS picks and asks it for both files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.test_readme import ROOT, quick_start_commands

CHAPTER = "chapters/00_start_here.ipynb"
EXERCISE = "exercises/01_sockets_and_channels/01_sockets_and_channels.ipynb"
SOLUTION = "solutions/01_sockets_and_channels/01_sockets_and_channels.ipynb"
STARTUP_SECONDS = 90


def launch_argv() -> list[str]:
    """The first command's `jupyter lab` part as argv, run with this interpreter."""
    first = quick_start_commands()[0]
    launch = first.split("&&")[-1].strip()
    argv = shlex.split(launch)
    assert argv[:4] == ["python", "-m", "jupyter", "lab"], f"unexpected launch command {launch!r}"
    return [sys.executable, *argv[1:]]


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET, with a bound; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def running_lab(tmp_path: Path):
    """The README's JupyterLab, headless, on a free port; stopped and reaped afterwards."""
    token = secrets.token_hex(16)
    argv = [*launch_argv(), "--no-browser", "--ServerApp.port=0", f"--ServerApp.token={token}",
            "--ServerApp.ip=127.0.0.1"]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # the README tells root users to add it
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    log = (tmp_path / "lab.log").open("w+b")
    process = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        base = None
        while base is None:
            assert process.poll() is None, f"jupyter lab exited early:\n{log_text(log)}"
            assert time.monotonic() < deadline, f"jupyter lab did not start:\n{log_text(log)}"
            found = re.search(rb"http://127\.0\.0\.1:(\d+)/lab", Path(log.name).read_bytes())
            if found:
                base = f"http://127.0.0.1:{int(found[1])}"
            else:
                time.sleep(0.2)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def log_text(log) -> str:
    """The tail of the server's log, for a failure message."""
    log.flush()
    return Path(log.name).read_text(errors="replace")[-3000:]


def test_first_command_serves_chapters_and_exercises_under_one_root(running_lab):
    """Chapter 00 and exercise 01 are both reachable: the root is the repository."""
    base, token = running_lab
    for path in (CHAPTER, EXERCISE, SOLUTION):
        status, body = get(f"{base}/api/contents/{path}?content=0&token={token}")
        assert status == 200, f"{path} is not served ({status}): {body[:300]!r}"
        assert json.loads(body)["path"] == path
    status, body = get(f"{base}/lab/tree/{CHAPTER}?token={token}")
    assert status == 200, f"chapter 00 does not open in JupyterLab ({status})"


def test_first_command_gives_jupyterlab_the_validate_button(running_lab):
    """nbgrader is in the learner's install, so its JupyterLab extension (Validate) loads."""
    base, token = running_lab
    status, body = get(f"{base}/lab/tree/{CHAPTER}?token={token}")
    assert status == 200
    assert b'"@jupyter/nbgrader"' in body, "nbgrader's JupyterLab extension is not installed"
