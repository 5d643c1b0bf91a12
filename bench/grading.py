"""Grading time per submission: plain ``nbgrader autograde`` vs isolated grading (issue 16).

    python bench/grading.py [--submissions 4]

Builds a teacher's course in a temporary folder (exercise 01 generated from solutions/),
hands in N correct submissions, then grades them twice, in two copies of that course:

* plain: ``python -m nbgrader autograde 01_sockets_and_channels --student S``, one at a time,
  as the README's workshop guide did before issue 16;
* isolated: ``mini_server.grading.isolate.grade`` (what ``python -m mini_server.grading
  grade`` runs): per submission a throwaway course, its own gradebook, a run, the check of
  the teacher's files and the recording.

It prints the median seconds per submission of each, the ratio isolated/plain, and the
isolated run's one-off set-up (the learner release and the template gradebook), which does
not grow with the room.  Each figure is measured in the same run, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mini_server.grading.release import grading_checkout  # noqa: E402 (after the path)

ASSIGNMENT = "01_sockets_and_channels"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.M)


def nbgrader(*args: str, cwd: Path) -> None:
    """`nbgrader ARGS` in ``cwd``; raises if it fails."""
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=600)


def course(folder: Path, submissions: int) -> list[str]:
    """A teacher's course with ``submissions`` correct answers handed in; the student ids."""
    grading_checkout(ROOT, folder, ASSIGNMENT)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", cwd=folder)
    nb = json.loads((folder / "exercises" / ASSIGNMENT / NOTEBOOK).read_text())
    worked = {c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
              for c in json.loads((folder / "solutions" / ASSIGNMENT / NOTEBOOK).read_text())
              ["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in worked:
            cell["source"] = MARKERS.sub("", worked[grade_id])
    students = [f"learner{n:02d}" for n in range(submissions)]
    for student in students:
        (folder / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
        (folder / "submitted" / student / ASSIGNMENT / NOTEBOOK).write_text(json.dumps(nb))
    return students


def plain(folder: Path, students: list[str]) -> list[float]:
    """Seconds of each plain autograde run."""
    seconds = []
    for student in students:
        started = time.monotonic()
        nbgrader("autograde", ASSIGNMENT, "--student", student, cwd=folder)
        seconds.append(time.monotonic() - started)
    return seconds


def isolated(folder: Path) -> tuple[list[float], float, list[float]]:
    """Seconds of each isolated submission, the whole run, and each submission's score."""
    from mini_server.grading.isolate import grade

    started = time.monotonic()
    results = grade(ASSIGNMENT, folder, report=lambda line: None)
    return [r.seconds for r in results], time.monotonic() - started, [r.score for r in results]


def main(submissions: int = 4) -> None:
    """Measure both ways and print the figures."""
    os.environ.setdefault("COURSE_FAST", "1")
    # plain autograde's kernels import this checkout's mini_server, as pip install -e . would
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT),
                                                             os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as work:
        first = Path(work) / "plain"
        students = course(first, submissions)
        second = Path(work) / "isolated"
        shutil.copytree(first, second)  # the same generated course, gradebook included
        before = plain(first, students)
        after, whole, scores = isolated(second)
    assert scores == [10.0] * submissions, scores  # every correct submission scored in full
    plain_median, isolated_median = statistics.median(before), statistics.median(after)
    print(f"exercise 01, {submissions} correct submissions, one at a time")
    print("plain autograde s/submission:   "
          + " ".join(f"{s:.1f}" for s in before) + f"  median {plain_median:.1f}")
    print("isolated grading s/submission:  "
          + " ".join(f"{s:.1f}" for s in after) + f"  median {isolated_median:.1f}")
    print(f"isolated one-off set-up (release, template gradebook): {whole - sum(after):.1f} s")
    print(f"ratio isolated/plain time per submission: {isolated_median / plain_median:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=4)
    main(parser.parse_args().submissions)
