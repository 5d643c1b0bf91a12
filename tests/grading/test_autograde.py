"""A workshop's grading run, end to end: zip_collect -> autograde -> export -> feedback.

Made-up submissions of exercise 01 go through nbgrader's own command line (plain
``nbgrader autograde``, in the course directory) in a temporary course directory; the
README's workshop guide grades with ``python -m mini_server.grading grade`` instead, which
runs this same autograde per submission in isolation (test_isolated_grading.py):

* alice: every answer right (10 points);
* bob: question 4 takes "the next frame" as the ping reply: the visible test passes, the
  hidden one (a channel that pushes before replying) fails: 6;
* carol: `while True: pass` in question 2: that question only: 8;
* dave: question 4 awaits forever: run_async's timeout costs that question only: 6;
* erin: question 3 wrong, and its test cell replaced by `pass`: autograde restores the test: 8;
* frank: question 1 right plus an IPython AST transformer that wraps every later cell in
  `try/except BaseException: pass`, nothing else answered: every check fails as tampered: 0;
* grace: question 4 unanswered, the notebook's `run_async` rebound so no check runs: 6;
* heidi: every answer right, with a debug print to stderr, a warning, a logging call and an
  un-awaited `asyncio.sleep(0)`: the noise costs nothing: 10;
* ivan: `str()` instead of `json.dumps` in encode_frame, which questions 3 and 4 build on: only
  question 1 is lost: 8.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrading import ENCODE, REBIND_RUN_ASYNC, ROOT, SWALLOW_EVERYTHING

pytestmark = [pytest.mark.usefixtures("kernel_environment"), pytest.mark.timeout(600)]

ASSIGNMENT = "01_sockets_and_channels"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
STUDENTS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"]
EXPECTED_SCORES = {"alice": 10.0, "bob": 6.0, "carol": 8.0, "dave": 6.0, "erin": 8.0,
                   "frank": 0.0, "grace": 6.0, "heidi": 10.0, "ivan": 8.0}
MAX_SCORE = 10.0
MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.M)

NEXT_FRAME_PING = '''
async def join_and_ping(url, topic, payload):
    async with connect(url + "/websocket?vsn=2.0.0") as ws:
        await ws.send(join_frame(topic, {}, "1"))
        joined = json.loads(await ws.recv())[4]
        if joined["status"] != "ok":
            raise RuntimeError(joined)
        await ws.send(encode_frame("1", "2", topic, "ping", payload))
        return json.loads(await ws.recv())[4]["response"]
'''

ENDLESS_DECODE = '''
def decode_frame(text):
    while True:
        pass
'''

NEVER_RETURNS = '''
async def join_and_ping(url, topic, payload):
    await asyncio.Event().wait()
'''

WRONG_HEARTBEAT = '''
def join_frame(topic, params, ref):
    return encode_frame(ref, ref, topic, "phx_join", params if params is not None else {})


def heartbeat_frame(ref):
    return encode_frame("0", ref, "phoenix", "heartbeat", {})
'''



STUB = 'raise NotImplementedError("write your answer here")'


NOISY_ENCODE = '''
import sys
import warnings


def encode_frame(join_ref, ref, topic, event, payload):
    print("encoding", topic, event, file=sys.stderr)
    warnings.warn("debugging encode_frame")
    return json.dumps([join_ref, ref, topic, event, payload])
'''

NOISY_PING = '''
import logging


async def join_and_ping(url, topic, payload):
    async def reply_to(ws, ref):
        while True:
            join_ref, msg_ref, msg_topic, event, body = json.loads(await ws.recv())
            if event == "phx_reply" and msg_ref == ref:
                return body

    asyncio.sleep(0)  # un-awaited
    logging.warning("joining %s", topic)
    async with connect(url + "/websocket?vsn=2.0.0") as ws:
        await ws.send(join_frame(topic, {}, "1"))
        joined = await reply_to(ws, "1")
        if joined["status"] != "ok":
            raise RuntimeError(f"join {topic} refused: {joined['response']}")
        await ws.send(encode_frame("1", "2", topic, "ping", payload))
        return (await reply_to(ws, "2"))["response"]
'''

STR_ENCODE = '''
def encode_frame(join_ref, ref, topic, event, payload):
    return str([join_ref, ref, topic, event, payload])
'''


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` in the course directory; fails the test if it exits non-zero."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done


def by_id(nb: dict, grade_id: str) -> dict:
    """The cell with that nbgrader grade_id."""
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def submission(release: dict, solutions: dict, changes: dict[str, str]) -> dict:
    """The released notebook with every answer filled in from solutions, then ``changes``."""
    nb = copy.deepcopy(release)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            worked = "".join(by_id(solutions, meta["grade_id"])["source"])
            cell["source"] = MARKERS.sub("", worked)
    for grade_id, code in changes.items():
        by_id(nb, grade_id)["source"] = code.strip("\n")
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A course directory after zip_collect, autograde (one student at a time) and export."""
    with pytest.MonkeyPatch.context() as env:
        from nbgrading import kernel_env

        for key, value in kernel_env().items():
            env.setenv(key, value)
        return grade_the_room(tmp_path_factory.mktemp("course"))


def grade_the_room(course: Path) -> dict:
    """Run the workshop guide's commands on five submissions; returns paths and timings."""
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    run("generate_assignment", ASSIGNMENT, "--force", cwd=course)

    release = json.loads((course / "exercises" / ASSIGNMENT / NOTEBOOK).read_text())
    solutions = json.loads((course / "solutions" / ASSIGNMENT / NOTEBOOK).read_text())
    changes = {
        "alice": {},
        "bob": {"q4_join_and_ping": NEXT_FRAME_PING},
        "carol": {"q2_decode_frame": ENDLESS_DECODE},
        "dave": {"q4_join_and_ping": NEVER_RETURNS},
        "erin": {"q3_join_and_heartbeat": WRONG_HEARTBEAT, "q3_tests": "pass"},
        "frank": {"q1_encode_frame": ENCODE + SWALLOW_EVERYTHING, "q2_decode_frame": STUB,
                  "q3_join_and_heartbeat": STUB, "q4_join_and_ping": STUB},
        "grace": {"q4_join_and_ping": REBIND_RUN_ASYNC},
        "heidi": {"q1_encode_frame": NOISY_ENCODE, "q4_join_and_ping": NOISY_PING},
        "ivan": {"q1_encode_frame": STR_ENCODE},
    }
    archive = course / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    files = {}
    for student in STUDENTS:
        files[student] = archive / f"{student}--{NOTEBOOK}"
        files[student].write_text(json.dumps(submission(release, solutions, changes[student])))
    # Half the room handed in one zip (as an LMS download does), half loose files.
    with zipfile.ZipFile(archive / "room-a.zip", "w") as bundle:
        for student in ("alice", "bob"):
            bundle.write(files[student], files[student].name)
            files[student].unlink()

    run("zip_collect", ASSIGNMENT, cwd=course)
    seconds = {}
    for student in STUDENTS:
        started = time.monotonic()
        run("autograde", ASSIGNMENT, "--student", student, cwd=course)
        seconds[student] = time.monotonic() - started
    run("export", cwd=course)
    run("generate_feedback", ASSIGNMENT, cwd=course)
    print("autograde seconds per submission:", {k: round(v, 1) for k, v in seconds.items()})
    return {"course": course, "seconds": seconds}


def test_zip_collect_puts_every_submission_in_place(graded):
    """Zipped and loose files both land in submitted/<student>/<assignment>/."""
    for student in STUDENTS:
        assert (graded["course"] / "submitted" / student / ASSIGNMENT / NOTEBOOK).is_file()


def test_exported_scores_are_exact(graded):
    """grades.csv has one row per student with exactly the expected score."""
    with open(graded["course"] / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert {s: float(rows[s]["score"]) for s in STUDENTS} == EXPECTED_SCORES
    assert {float(rows[s]["max_score"]) for s in STUDENTS} == {MAX_SCORE}


def question_scores(course: Path, student: str) -> dict[str, float]:
    """Per-test-cell scores from the gradebook."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        nb = gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, student)
        return {grade.name: grade.score for grade in nb.grades}


def test_an_endless_loop_costs_only_its_own_question(graded):
    """carol's `while True: pass` in question 2 loses question 2's points and nothing else."""
    assert question_scores(graded["course"], "carol") == {
        "q1_tests": 2.0, "q2_tests": 0.0, "q3_tests": 2.0, "q4_tests": 4.0}


def test_a_coroutine_that_never_returns_costs_only_its_own_question(graded):
    """dave's endless await in question 4 loses question 4's points and nothing else."""
    assert question_scores(graded["course"], "dave") == {
        "q1_tests": 2.0, "q2_tests": 2.0, "q3_tests": 2.0, "q4_tests": 0.0}


def test_hidden_tests_catch_what_visible_ones_miss(graded):
    """bob's answer to question 4 passes the visible test but not the hidden one."""
    cell = by_id(json.loads((graded["course"] / "autograded" / "bob" / ASSIGNMENT /
                             NOTEBOOK).read_text()), "q4_tests")
    errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
    assert errors, "bob's question 4 should have failed"
    assert question_scores(graded["course"], "bob")["q4_tests"] == 0.0


def test_a_tampered_test_cell_is_restored_before_grading(graded):
    """erin replaced question 3's test by `pass`; the autograded notebook runs the real one."""
    autograded = json.loads((graded["course"] / "autograded" / "erin" / ASSIGNMENT /
                             NOTEBOOK).read_text())
    assert "assert" in "".join(by_id(autograded, "q3_tests")["source"])
    assert question_scores(graded["course"], "erin")["q3_tests"] == 0.0


def test_the_timeout_message_reaches_the_feedback(graded):
    """dave's feedback says why question 4 failed, in words a learner understands."""
    feedback = (graded["course"] / "feedback" / "dave" / ASSIGNMENT /
                f"{ASSIGNMENT}.html").read_text()
    assert "did not finish within 10 s" in feedback


def test_grading_one_submission_takes_well_under_a_minute(graded):
    """One `nbgrader autograde --student` run (start-up and kernel included) stays under 60 s.

    The target is 20 s on an idle machine; 60 s leaves room for a machine shared by a CI
    run, and still catches a grader that waits for a cell timeout.
    """
    assert graded["seconds"]["alice"] < 60.0, graded["seconds"]


def test_tampering_with_the_tests_gains_nothing(graded):
    """frank's AST transformer and grace's rebound run_async earn no point they did not answer."""
    assert question_scores(graded["course"], "frank") == {
        "q1_tests": 0.0, "q2_tests": 0.0, "q3_tests": 0.0, "q4_tests": 0.0}
    assert question_scores(graded["course"], "grace")["q4_tests"] == 0.0
    feedback = (graded["course"] / "feedback" / "frank" / ASSIGNMENT /
                f"{ASSIGNMENT}.html").read_text()
    assert "cannot be trusted" in feedback


def test_noise_costs_a_correct_answer_nothing(graded):
    """heidi's stderr print, warning, log line and un-awaited sleep: full marks, shown as notes."""
    assert question_scores(graded["course"], "heidi") == {
        "q1_tests": 2.0, "q2_tests": 2.0, "q3_tests": 2.0, "q4_tests": 4.0}
    feedback = (graded["course"] / "feedback" / "heidi" / ASSIGNMENT /
                f"{ASSIGNMENT}.html").read_text()
    assert "note: your code wrote to stderr" in feedback
    assert "was never awaited" in feedback


def test_a_wrong_encode_frame_costs_one_question(graded):
    """ivan's str() frames lose question 1 only; q3 and q4 are graded with the course's encoder."""
    assert question_scores(graded["course"], "ivan") == {
        "q1_tests": 0.0, "q2_tests": 2.0, "q3_tests": 2.0, "q4_tests": 4.0}
