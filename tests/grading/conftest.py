"""Grading tests start Jupyter kernels: give them the course package and fast timers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # nbgrading.py sits next to the tests

from nbgrading import kernel_env


@pytest.fixture
def kernel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels (children of this process) import mini_server from the checkout."""
    for key, value in kernel_env().items():
        monkeypatch.setenv(key, value)
