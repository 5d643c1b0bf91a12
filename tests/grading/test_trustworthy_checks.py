"""Checks a teacher can trust (issue 16): tampering gains nothing, noise costs nothing,
wrong answers fail with a message that names the mistake, one mistake costs one question.

Each test answers a solution notebook (visible and hidden tests) from its worked answers,
swaps in the submission's cells, runs it through nbgrader's Validator and compares the
failing test cells with what the submission deserves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from nbgrading import REBIND_RUN_ASYNC, SWALLOW_EVERYTHING, notebook, validate

pytestmark = [pytest.mark.usefixtures("kernel_environment"), pytest.mark.timeout(300)]

MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.M)

# Installed by an answer cell: every later cell, test cells included, runs inside
# try/except BaseException: pass, so no assert can fail (11/11 for nothing before issue 16).


STUB = 'raise NotImplementedError("write your answer here")'


def answered(assignment: str, changes: dict[str, str], out: Path) -> Path:
    """The solution notebook with its worked answers, then ``changes`` (answer cell: code)."""
    nb = json.loads(notebook("solutions", assignment).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = MARKERS.sub("", "".join(cell["source"]))
            if meta["grade_id"] in changes:
                cell["source"] = changes[meta["grade_id"]].strip("\n")
    path = out / f"{assignment}.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def failures(path: Path) -> dict[str, str]:
    """grade_id -> error text of every test cell that scores less than full marks."""
    results = validate(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    ids = {
        "".join(c["source"]).strip(): c["metadata"]["nbgrader"]["grade_id"]
        for c in nb["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    }
    return {ids[f["source"].strip()]: f["raw_error"] for f in results.get("failed", [])}


def worked(assignment: str, grade_id: str) -> str:
    """The worked answer of one cell, without the solution markers."""
    nb = json.loads(notebook("solutions", assignment).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return MARKERS.sub("", "".join(cell["source"]))
    raise KeyError(grade_id)


ALSO_HIDE_STDERR = """
import sys
sys.stderr = sys.stdout  # so that a failing check seems to write nothing to stderr
"""

ALSO_DISARM_GUARD = """
import mini_server.testing
mini_server.testing.guard = lambda: None  # test cells import guard from here
"""


@pytest.mark.parametrize(
    "extra", ["", ALSO_HIDE_STDERR, ALSO_DISARM_GUARD], ids=["plain", "stderr", "guard"]
)
def test_an_ast_transformer_that_swallows_failures_gains_nothing(extra, tmp_path):
    """Right q1 plus the transformer, stubs elsewhere: every test cell fails, saying why.

    Rebinding sys.stderr does not hide the finding (guard writes to the kernel's stream it
    kept), and a disarmed guard() is caught by run_async, which checks guard() is genuine.
    """
    ex01 = "01_sockets_and_channels"
    path = answered(
        ex01,
        {
            "q1_encode_frame": worked(ex01, "q1_encode_frame")
            + "\n\n"
            + SWALLOW_EVERYTHING
            + extra,
            "q2_decode_frame": STUB,
            "q3_join_and_heartbeat": STUB,
            "q4_join_and_ping": STUB,
        },
        tmp_path,
    )
    failed = failures(path)
    assert set(failed) == {"q1_tests", "q2_tests", "q3_tests", "q4_tests"}
    expected = (
        "mini_server.testing.guard was replaced"
        if extra == ALSO_DISARM_GUARD
        else ("ast_transformers")
    )
    for error in failed.values():
        assert "cannot be trusted" in error and expected in error, error


@pytest.mark.parametrize(
    ("assignment", "answer", "test"),
    [
        ("02_unreliable_connections", "q4_heartbeat_monitor", "q4_tests"),
        ("03_channel_subscriptions", "q2_topic_keeper", "q2_tests"),
    ],
)
def test_rebinding_run_async_gains_nothing(assignment, answer, test, tmp_path):
    """A stub answer plus a notebook-global run_async that never runs the checks fails."""
    path = answered(assignment, {answer: STUB + "\n\n\n" + REBIND_RUN_ASYNC}, tmp_path)
    # The stub raises when its cell runs, so the rebinding goes in a cell of its own: the
    # release's answer cell holds more than the stub (the keeper's plumbing) in exercise 03.
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == answer:
            cell["source"] = REBIND_RUN_ASYNC.strip("\n")
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert set(failures(path)) == {test}


def test_replacing_the_package_run_async_is_caught(tmp_path):
    """Patching mini_server.testing.run_async itself fails the checks with a message."""
    ex01 = "01_sockets_and_channels"
    path = answered(
        ex01,
        {
            "q4_join_and_ping": STUB
            + "\n"
            + """
import mini_server.testing
mini_server.testing.run_async = lambda *args, **kwargs: None
"""
        },
        tmp_path,
    )
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:  # the patch runs, the answer stays missing
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "q4_join_and_ping":
            cell["source"] = "".join(cell["source"]).replace(STUB + "\n", "")
    path.write_text(json.dumps(nb), encoding="utf-8")
    failed = failures(path)
    assert set(failed) == {"q4_tests"}
    assert "mini_server.testing.run_async was replaced" in failed["q4_tests"]


NOISY_ENCODE = """
import sys
import warnings


def encode_frame(join_ref, ref, topic, event, payload):
    print("encoding", topic, event, file=sys.stderr)  # a debug print left in
    warnings.warn("debugging encode_frame")
    return json.dumps([join_ref, ref, topic, event, payload])
"""

NOISY_PING = """
import logging


async def join_and_ping(url, topic, payload):
    async def reply_to(ws, ref):
        while True:
            join_ref, msg_ref, msg_topic, event, body = json.loads(await ws.recv())
            if event == "phx_reply" and msg_ref == ref:
                return body

    asyncio.sleep(0)  # un-awaited: harmless here, reported as a hint
    logging.warning("joining %s", topic)
    async with connect(url + "/websocket?vsn=2.0.0") as ws:
        await ws.send(join_frame(topic, {}, "1"))
        joined = await reply_to(ws, "1")
        if joined["status"] != "ok":
            raise RuntimeError(f"join {topic} refused: {joined['response']}")
        await ws.send(encode_frame("1", "2", topic, "ping", payload))
        return (await reply_to(ws, "2"))["response"]
"""

NOISY_BOUNDS = """
import logging


def detection_bounds(interval):
    logging.warning("interval %s", interval)  # logging.basicConfig's handler: stderr
    return (interval, 2 * interval)
"""


@pytest.mark.parametrize(
    ("assignment", "changes"),
    [
        (
            "01_sockets_and_channels",
            {"q1_encode_frame": NOISY_ENCODE, "q4_join_and_ping": NOISY_PING},
        ),
        ("02_unreliable_connections", {"q3_detection_bounds": NOISY_BOUNDS}),
    ],
    ids=["ex01-stderr-warning-unawaited", "ex02-logging"],
)
def test_noisy_correct_answers_score_full_marks(assignment, changes, tmp_path):
    """stderr, warnings, logging and an un-awaited coroutine cost a correct answer nothing."""
    assert failures(answered(assignment, changes, tmp_path)) == {}


STR_ENCODE = """
def encode_frame(join_ref, ref, topic, event, payload):
    return str([join_ref, ref, topic, event, payload])
"""

UNCHECKED_DECODE = """
def decode_frame(text):
    join_ref, ref, topic, event, payload = json.loads(text)  # no 5-element array check
    return Message(topic=topic, event=event, payload=payload, ref=ref, join_ref=join_ref)
"""

NEXT_FRAME_PING = """
async def join_and_ping(url, topic, payload):
    async with connect(url + "/websocket?vsn=2.0.0") as ws:
        await ws.send(join_frame(topic, {}, "1"))
        joined = json.loads(await ws.recv())[4]
        if joined["status"] != "ok":
            raise RuntimeError(joined)
        await ws.send(encode_frame("1", "2", topic, "ping", payload))
        return json.loads(await ws.recv())[4]["response"]
"""


def test_each_mistake_costs_its_own_question_and_is_named(tmp_path):
    """str() for json.dumps, no 5-element check, 'the next frame is the reply': three
    questions fail, each naming its mistake; q3 (which builds on encode_frame) still passes.
    """
    path = answered(
        "01_sockets_and_channels",
        {
            "q1_encode_frame": STR_ENCODE,
            "q2_decode_frame": UNCHECKED_DECODE,
            "q4_join_and_ping": NEXT_FRAME_PING,
        },
        tmp_path,
    )
    failed = failures(path)
    assert set(failed) == {"q1_tests", "q2_tests", "q4_tests"}
    assert "is not JSON: build the frame with json.dumps" in failed["q1_tests"]
    assert "raise ValueError unless it is a JSON array of exactly 5 elements" in failed["q2_tests"]
    assert "not the reply it expected" in failed["q4_tests"]


SLIDING_PEAK = """
def herd_connect_times(schedules, outage):
    times = []
    for schedule in schedules:
        t, tries = 0.0, 0
        while t < outage:
            tries += 1
            t += schedule(tries)
        times.append(t)
    return sorted(times)


def peak_per_100ms(times):
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 0.1:  # a sliding window, not aligned ones
            start += 1
        best = max(best, end - start + 1)
    return best
"""


def test_a_sliding_window_fails_with_a_message_that_says_so(tmp_path):
    """ex04 q3 with a sliding 100 ms window: the hidden test fails and says 'aligned'."""
    failed = failures(answered("04_reconnecting_well", {"q3_herd": SLIDING_PEAK}, tmp_path))
    assert set(failed) == {"q3_tests"}
    assert "a sliding window finds 4 within 100 ms" in failed["q3_tests"]
