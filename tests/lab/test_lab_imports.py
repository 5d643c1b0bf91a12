"""Importing the course kit stays cheap: matplotlib loads when a plot is first drawn."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What the chapters' setup cells import (chapter 04 imports matplotlib itself, to draw).
SETUP_IMPORTS = """
import sys
import mini_server.lab
from mini_server.client import ChannelState, EventLog, LastSeen, NaiveSocket, Socket
from mini_server.lab import servers, stream, timing
from mini_server.lab.chaos import ChaosProxy
from mini_server.lab.herd import simulate_herd
from mini_server.lab.log_routing import LogView
from mini_server.lab.panels import ConnectionPanel
from mini_server.lab.timeline import Timeline
print(sorted(m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")))
"""


def test_importing_the_lab_and_what_setup_cells_use_does_not_import_matplotlib():
    """A chapter's first cell pays no ~0.9 s matplotlib import before anything is drawn."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", SETUP_IMPORTS], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", f"imported at setup: {done.stdout.strip()}"


def test_drawing_a_timeline_still_works_and_imports_matplotlib_then():
    """Timeline.plot() imports matplotlib itself and returns a figure."""
    code = ("import sys\nfrom mini_server.lab.timeline import Timeline\n"
            "t = Timeline([], interval=0.1)\nassert 'matplotlib' not in sys.modules\n"
            "fig, numbers = t.plot()\nprint(type(fig).__name__, 'matplotlib' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Figure", "True"]
