"""nbgrader's Validator proves both directions; exercises/ is exactly what nbgrader generates.

The `nbgrader validate` CLI exits 0 even when tests fail, so these tests use the Validator
class and read its results.  Each notebook runs in a real kernel (a few seconds each).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrading import ASSIGNMENTS, ROOT, grade_cells, notebook, validate

pytestmark = [pytest.mark.usefixtures("kernel_environment"), pytest.mark.timeout(300)]


def first_line(text: str) -> str:
    """The first line of a cell, to name it in a failure."""
    return text.strip().splitlines()[0]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_solution_passes_every_test(assignment):
    """Run the worked solution: every visible and hidden test passes."""
    results = validate(notebook("solutions", assignment))
    failed = [(first_line(f["source"]), f["raw_error"][-600:]) for f in results.get("failed", [])]
    assert not failed, f"solution tests failing: {failed}"
    assert results == {}, results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_shipped_exercise_fails_every_test(assignment):
    """Run the released notebook as shipped: every test cell fails (it calls learner code)."""
    path = notebook("exercises", assignment)
    results = validate(path)
    assert "changed" not in results, "the exercise's locked cells differ from their checksums"
    # Test cells all open with the same imports and guard(): compare whole sources.
    failed = {f["source"].strip() for f in results.get("failed", [])}
    every = {"".join(c["source"]).strip() for c in grade_cells(path)}
    passing = sorted(first_line(s.split("guard()", 1)[-1]) for s in every - failed)
    assert failed == every, f"tests passing on an empty exercise: {passing}"


@pytest.fixture(scope="module")
def fresh_exercises(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nbgrader generate_assignment run on a copy of solutions/, in a temporary course."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions", course / "solutions")
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "*",
                           "--force"], cwd=course, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return course / "exercises"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_exercise_equals_a_fresh_generation(fresh_exercises, assignment):
    """exercises/ is byte for byte what generate_assignment makes from solutions/ now."""
    name = f"{assignment}/{assignment}.ipynb"
    fresh = (fresh_exercises / name).read_text(encoding="utf-8")
    committed = notebook("exercises", assignment).read_text(encoding="utf-8")
    assert committed == fresh, (
        f"exercises/{name} is stale: run `nbgrader generate_assignment {assignment} --force` "
        "from the repository root")


def test_generation_writes_nothing_else(fresh_exercises):
    """The fresh release holds exactly one notebook per assignment, as the committed one."""
    fresh = sorted(p.relative_to(fresh_exercises).as_posix() for p in fresh_exercises.rglob("*")
                   if p.is_file())
    committed = sorted(p.relative_to(ROOT / "exercises").as_posix()
                       for p in (ROOT / "exercises").rglob("*") if p.is_file())
    assert fresh == committed == [f"{a}/{a}.ipynb" for a in ASSIGNMENTS]
