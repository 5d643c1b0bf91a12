"""Isolated grading (issue 16): hostile submissions gain nothing, everyone else keeps their score.

One module-scoped run of ``python -m mini_server.grading grade`` over a room of exercise 01
submissions in a temporary teacher's course (real nbgrader: generate_assignment, the grade
command, export, generate_feedback).  Three honest learners and eight hostile ones, each
hostile one aiming at the teacher's files both by the relative path ``nbgrader autograde``
offers (``../../../``) and by the absolute path of the teacher's course, as a learner who
knows it would:

* alice (every answer right): 10; bob (``str()`` frames, question 1 wrong): 8; zoe (right): 10;
* mallory_a writes ``manual_score = max`` into the gradebook with sqlite3: q1 only, 2;
* mallory_b installs an AST transformer that wraps every cell in ``try/except``: 0;
* mallory_c answers questions 1-3 and rebinds ``run_async`` in question 4: 6;
* mallory_d executes the worked answers from ``../../../solutions/``: there are none, 0;
* mallory_e deletes the gradebook, mallory_f corrupts it: their runs fail, 0;
* mallory_g overwrites zoe's submitted notebook (graded after it): 2, and zoe keeps 10;
* mallory_h leaves a detached process that keeps writing manual scores: 2.

Through plain ``nbgrader autograde`` the same room gives mallory_a 10 and mallory_d 10, zoe 0
after mallory_g, and after mallory_e or mallory_f every later learner fails (issue 16).
"""

from __future__ import annotations

import copy
import csv
import json
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrading import ENCODE, REBIND_RUN_ASYNC, ROOT, SWALLOW_EVERYTHING, kernel_env

from mini_server.grading.release import grading_checkout

pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the grader ends leftover processes through /proc")]

ASSIGNMENT = "01_sockets_and_channels"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.M)
STUB = 'raise NotImplementedError("write your answer here")'
LINGER = f"linger-{uuid.uuid4().hex}"  # names the detached process, to look for it afterwards


STR_ENCODE = '''
def encode_frame(join_ref, ref, topic, event, payload):
    return str([join_ref, ref, topic, event, payload])
'''

MANUAL_SCORE = ENCODE + '''
import sqlite3

for db in ("../../../gradebook.db", TEACHER_DB):
    try:
        with sqlite3.connect(db, timeout=5) as con:
            con.execute("UPDATE grade SET needs_manual_grade = 0, manual_score = "
                        "(SELECT max_score FROM grade_cells WHERE grade_cells.id = grade.cell_id)")
    except sqlite3.Error:
        pass
'''


STEAL = '''
import json as _json
import pathlib as _pathlib

import mini_server as _mini_server


def _steal(grade_id):
    """Run the worked answer of grade_id from the course's solutions/, wherever it is."""
    name = "01_sockets_and_channels"
    for folder in (_pathlib.Path("../../../solutions"),
                   _pathlib.Path(_mini_server.__file__).resolve().parents[1] / "solutions"):
        path = folder / name / f"{name}.ipynb"
        if path.is_file():
            for cell in _json.loads(path.read_text())["cells"]:
                if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
                    exec("".join(cell["source"]), globals())


_steal("q1_encode_frame")
'''

DELETE = ENCODE + '''
import os

for db in ("../../../gradebook.db", TEACHER_DB):
    try:
        os.remove(db)
    except OSError:
        pass
'''

CORRUPT = ENCODE + '''
for db in ("../../../gradebook.db", TEACHER_DB):
    try:
        with open(db, "r+b") as f:
            f.write(b"this is not a database any more " * 256)
    except OSError:
        pass
'''

OVERWRITE = ENCODE + '''
empty = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
zoe = "/submitted/zoe/01_sockets_and_channels/01_sockets_and_channels.ipynb"
for target in ("../../.." + zoe, TEACHER_COURSE + zoe):
    try:
        with open(target, "w") as f:
            f.write(empty)
    except OSError:
        pass
'''

LEFT_RUNNING = ENCODE + '''
import subprocess
import sys

LOOP = """
import sqlite3, sys, time
end = time.time() + 60
while time.time() < end:
    try:
        con = sqlite3.connect(sys.argv[1], timeout=1)
        con.execute("UPDATE grade SET manual_score = 99")
        con.commit()
        con.close()
    except Exception:
        pass
    time.sleep(0.2)
"""
subprocess.Popen([sys.executable, "-c", LOOP, TEACHER_DB, MARKER], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
'''

ROOM = {
    "alice": {},
    "bob": {"q1_encode_frame": STR_ENCODE},
    "mallory_a": {"q1_encode_frame": MANUAL_SCORE},
    "mallory_b": {"q1_encode_frame": ENCODE + SWALLOW_EVERYTHING},
    "mallory_c": {"q4_join_and_ping": REBIND_RUN_ASYNC},
    "mallory_d": {"q1_encode_frame": STEAL, "q2_decode_frame": '_steal("q2_decode_frame")',
                  "q3_join_and_heartbeat": '_steal("q3_join_and_heartbeat")',
                  "q4_join_and_ping": '_steal("q4_join_and_ping")'},
    "mallory_e": {"q1_encode_frame": DELETE},
    "mallory_f": {"q1_encode_frame": CORRUPT},
    "mallory_g": {"q1_encode_frame": OVERWRITE},
    "mallory_h": {"q1_encode_frame": LEFT_RUNNING},
    "zoe": {},
}
# Every other answer of a hostile submission is left unanswered, except mallory_c's questions
# 1-3 (right): question 4's test imports its own run_async, so the rebinding costs q4 only.
HONEST = ("alice", "bob", "zoe")
EXPECTED = {"alice": 10.0, "bob": 8.0, "mallory_a": 2.0, "mallory_b": 0.0, "mallory_c": 6.0,
            "mallory_d": 0.0, "mallory_e": 0.0, "mallory_f": 0.0, "mallory_g": 2.0,
            "mallory_h": 2.0, "zoe": 10.0}
NAMED = {  # what the report says about each submission that needs the teacher's attention
    "mallory_a": "changed the teacher's gradebook.db",
    "mallory_b": "tampered with the tests",
    "mallory_e": "changed the teacher's gradebook.db",
    "mallory_f": "changed the teacher's gradebook.db",
    "mallory_g": f"changed the teacher's submitted/zoe/{ASSIGNMENT}/{NOTEBOOK}",
    "mallory_h": "changed the teacher's gradebook.db",
}


def nbgrader(*args: str, cwd: Path) -> None:
    """`nbgrader ARGS` in the teacher's course; fails the test if it exits non-zero."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr[-3000:]}"


def by_id(nb: dict, grade_id: str) -> dict:
    """The cell with that nbgrader grade_id."""
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def submission(release: dict, solutions: dict, student: str, course: Path) -> dict:
    """The released notebook answered as ``student`` answers it."""
    nb = copy.deepcopy(release)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            worked = MARKERS.sub("", "".join(by_id(solutions, meta["grade_id"])["source"]))
            answered = student in HONEST or (student == "mallory_c" and meta["grade_id"][1] < "4")
            cell["source"] = worked if answered else STUB
    for grade_id, code in ROOM[student].items():
        code = (code.replace("TEACHER_DB", repr(str(course / "gradebook.db")))
                .replace("TEACHER_COURSE", repr(str(course))).replace("MARKER", repr(LINGER)))
        by_id(nb, grade_id)["source"] = code.strip("\n")
    return nb


def teacher_course(course: Path) -> None:
    """A checkout of the course (what the release is made from) with the exercise generated."""
    grading_checkout(ROOT, course, ASSIGNMENT)
    nbgrader("generate_assignment", ASSIGNMENT, "--force", cwd=course)


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The teacher's course after the grade command, export and generate_feedback."""
    course = tmp_path_factory.mktemp("teacher")
    with pytest.MonkeyPatch.context() as env:
        for key, value in kernel_env().items():
            env.setenv(key, value)
        teacher_course(course)
        release = json.loads((course / "exercises" / ASSIGNMENT / NOTEBOOK).read_text())
        solutions = json.loads((course / "solutions" / ASSIGNMENT / NOTEBOOK).read_text())
        handed_in = {}
        for student in ROOM:
            folder = course / "submitted" / student / ASSIGNMENT
            folder.mkdir(parents=True)
            handed_in[student] = json.dumps(submission(release, solutions, student, course))
            (folder / NOTEBOOK).write_text(handed_in[student])
        done = subprocess.run([sys.executable, "-m", "mini_server.grading", "grade", ASSIGNMENT,
                               "--course", str(course)], capture_output=True, text=True,
                              timeout=800)
        print(done.stdout)
        assert done.returncode == 0, done.stderr[-3000:]
        nbgrader("export", cwd=course)
        nbgrader("generate_feedback", ASSIGNMENT, cwd=course)
    lines = {line.split(":", 1)[0]: line for line in done.stdout.splitlines() if ":" in line}
    return {"course": course, "report": done.stdout, "lines": lines, "handed_in": handed_in}


def scores(course: Path) -> dict[str, float]:
    """Each student's score for the assignment, from the teacher's gradebook."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "channels-deep-dive") as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(ASSIGNMENT)}


def test_hostile_submissions_gain_nothing_and_the_others_keep_their_scores(room):
    """Every submission's score is what its answers earn, and nothing more."""
    assert scores(room["course"]) == EXPECTED


def test_the_teachers_gradebook_stays_intact_with_no_manual_score(room):
    """The gradebook is a sound SQLite file, and no learner wrote a manual score into it."""
    with sqlite3.connect(room["course"] / "gradebook.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL"
                           ).fetchone() == (0,)
    assert not list(room["course"].glob("gradebook.db-*")), "a journal was left beside it"


def test_the_run_names_each_hostile_submission_and_goes_on(room):
    """Each tampering submission's report line says what it did; honest ones say nothing."""
    lines = room["lines"]
    for student, what in NAMED.items():
        assert "NEEDS ATTENTION" in lines[student] and what in lines[student], lines[student]
    for student in (*HONEST, "mallory_c", "mallory_d"):
        assert "NEEDS ATTENTION" not in lines[student], lines[student]
    assert f"graded {len(ROOM)} submissions" in room["report"]


def test_a_run_that_cannot_be_scored_says_so(room):
    """The submissions that destroyed their own gradebook are reported as failed runs."""
    for student in ("mallory_e", "mallory_f"):
        assert "autograde failed" in room["lines"][student], room["lines"][student]


def test_tampering_submissions_are_flagged_in_the_gradebook(room):
    """nbgrader's own flag marks exactly the submissions the report names."""
    with Gradebook(f"sqlite:///{room['course'] / 'gradebook.db'}", "channels-deep-dive") as gb:
        flagged = {s.student.id for s in gb.assignment_submissions(ASSIGNMENT)
                   if any(nb.flagged for nb in s.notebooks)}
    assert flagged == set(NAMED)


def test_another_learners_submitted_notebook_is_put_back(room):
    """zoe's notebook, overwritten by mallory_g, is on disk as zoe handed it in."""
    path = room["course"] / "submitted" / "zoe" / ASSIGNMENT / NOTEBOOK
    assert path.read_text() == room["handed_in"]["zoe"]


def test_export_and_feedback_read_the_recorded_scores(room):
    """nbgrader export's grades.csv and each learner's feedback file come from the gradebook."""
    with open(room["course"] / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert rows == EXPECTED
    for student in set(ROOM) - {"mallory_e", "mallory_f"}:  # whose runs failed: no notebook
        feedback = room["course"] / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
        assert feedback.is_file(), student


def test_no_process_a_submission_detached_is_left_running(room):
    """mallory_h's detached writer was ended with its kernel."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if LINGER.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                continue
    assert not found
