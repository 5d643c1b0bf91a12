"""The benchmarks still run (tiny sizes; their figures are read by people, not asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load(name: str):
    """Import a bench script as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_fanout_benchmark_reports_a_ratio(capsys):
    """bench/fanout.py delivers every broadcast both ways and prints the ratio line."""
    await load("fanout").main(subscribers=3, messages=5, rounds=1)
    out = capsys.readouterr().out
    assert "3 subscribers x 5 broadcasts = 15 deliveries" in out
    assert "ratio intercept/fastlane time:" in out
