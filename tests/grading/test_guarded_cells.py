"""Every graded test cell checks for tampering before it checks the answer."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted(ROOT.glob("solutions/*/*.ipynb"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_every_test_cell_calls_guard_before_its_checks(path):
    nb = nbformat.read(path, as_version=4)
    unguarded = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        lines = [line.strip() for line in cell.source.splitlines()]
        calls = [i for i, line in enumerate(lines) if line.startswith("guard()")]
        checks = [i for i, line in enumerate(lines)  # an assert or a call of learner code
                  if line.startswith("assert")
                  or re.search(r"\b(run_async|run_with_fake_clock|failure_of)\(", line)]
        if not calls or (checks and min(checks) < calls[0]):
            unguarded.append(meta.get("grade_id"))
    assert not unguarded, f"{path.stem}: test cells without guard() first: {unguarded}"
