"""Hidden tests earn their place: each catches a typical mistake the visible tests let through.

For every assignment a few plausible wrong answers (one per question, so they cannot mask each
other) are put into two notebooks and run through nbgrader's Validator:

* the released exercise with the worked answers, the mistakes swapped in: no test fails
  (learners see green);
* the solution notebook, visible and hidden tests, the same mistakes swapped in: exactly the
  questions with a mistake fail (the grader sees them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from nbgrading import notebook, validate

pytestmark = [pytest.mark.usefixtures("kernel_environment"), pytest.mark.timeout(300)]

MARKERS = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.M)
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# assignment -> {answer cell grade_id: (the test cell it should fail, wrong answer)}
MISTAKES: dict[str, dict[str, tuple[str, str]]] = {
    "01_sockets_and_channels": {
        "q2_decode_frame": ("q2_tests", '''
def decode_frame(text):
    join_ref, ref, topic, event, payload = json.loads(text)  # no 5-element array check
    return Message(topic=topic, event=event, payload=payload, ref=ref, join_ref=join_ref)
'''),
        "q3_join_and_heartbeat": ("q3_tests", '''
def join_frame(topic, params, ref):
    return encode_frame(ref, ref, topic, "phx_join", params)  # None stays null


def heartbeat_frame(ref):
    return encode_frame(None, ref, "phoenix", "heartbeat", {})
'''),
        "q4_join_and_ping": ("q4_tests", '''
async def join_and_ping(url, topic, payload):
    async with connect(url + "/websocket?vsn=2.0.0") as ws:
        await ws.send(join_frame(topic, {}, "1"))
        await ws.recv()  # trusts the next frame to be the join reply, ignores its status
        await ws.send(encode_frame("1", "2", topic, "ping", payload))
        return json.loads(await ws.recv())[4]["response"]
'''),
    },
    "02_unreliable_connections": {
        "q1_reconnects": ("q1_tests", '''
def reconnects(close_code, phoenix_js="1.8.16", by_client=False):
    if by_client:
        return False
    return phoenix_js >= "1.8.16" or close_code != 1000  # versions compared as strings
'''),
        "q3_detection_bounds": ("q3_tests", '''
def detection_bounds(interval):
    return (0.0, 2 * interval)
'''),
        "q4_heartbeat_monitor": ("q4_tests", '''
async def heartbeat_monitor(ws, interval):
    loop = asyncio.get_running_loop()
    ref = 0
    while True:
        await asyncio.sleep(interval)
        ref += 1
        await ws.send(json.dumps([None, str(ref), "phoenix", "heartbeat", {}]))
        deadline = loop.time() + interval
        try:
            while True:
                async with asyncio.timeout(max(deadline - loop.time(), 0)):
                    frame = json.loads(await ws.recv())
                if frame[3] == "phx_reply":  # any reply, whatever its topic and ref
                    break
        except TimeoutError:
            return
'''),
    },
    "03_channel_subscriptions": {
        "q1_predict_counts": ("q1_tests", '''
def predict_counts(topics, client):
    return [(1, topics), (0, 0), (1, 0), (1, topics)]  # the naive client too?
'''),
        "q2_topic_keeper": ("q2_tests", '''
class TopicKeeper(TopicKeeper):
    def __init__(self, url, reconnect_after=lambda tries: 0.05):
        super().__init__(url, reconnect_after)
        self.topics = []

    async def join(self, topic, params=None):
        self.topics.append((topic, params() if callable(params) else params))
        return await self.send_join(topic, params)

    async def on_connected(self):
        for topic, params in self.topics:
            await self.send_join(topic, params)
'''),
        "q3_reconnect_time": ("q3_tests", '''
def reconnect_time(outage, schedule):
    t, tries = 0.0, 0
    while t <= outage:  # an attempt exactly at the outage's end does not count
        tries += 1
        t += schedule(tries)
    return t
'''),
    },
    "04_reconnecting_well": {
        "q3_herd": ("q3_tests", '''
def herd_connect_times(schedules, outage):
    times = []
    for schedule in schedules:
        t, tries = 0.0, 0
        while t < outage:
            tries += 1
            t += schedule(tries)
        times.append(t)
    return times  # not sorted


def peak_per_100ms(times):
    return max(Counter(round(t * 10) for t in times).values())  # windows centred, not aligned
'''),
        "q4_jittered_backoff": ("q4_tests", '''
def jittered_backoff(tries, base=0.1, cap=5.0, rng=random):
    return rng.uniform(0, min(cap, base * 2 ** (tries - 1)))  # overflows for huge tries
'''),
    },
    "05_keeping_data_alive": {
        "q1_lost_in_outage": ("q1_tests", '''
def lost_in_outage(sent, received, start, end):
    got = set(received)
    return sorted(n for at, n in sent if start < at < end and n not in got)  # edges excluded
'''),
        "q2_push_fates": ("q2_tests", '''
def push_fates(pushes, rejoined_at, kernel_restarted=False):
    # the timeout counted from the start of the outage, and a restart forgotten
    return ["sent" if timeout > rejoined_at else "timeout" for pushed_at, timeout in pushes]
'''),
        "q3_catch_up_channel": ("q3_tests", '''
class CatchUpChannel(Channel):
    history = None
    intercept = ("new_msg",)

    async def join(self, topic, payload):
        self.assigns["last_seen"] = payload["last_seen_id"]  # a first visit sends none
        self.send_info("replay")
        return ok()

    async def handle_info(self, msg):
        for stored in self.history.since(self.topic, self.assigns["last_seen"]):
            await self.push("new_msg", stored.payload())
        return noreply()

    async def handle_out(self, event, payload):
        await self.push(event, payload)  # no check: a message replayed and broadcast goes twice
        return noreply()
'''),
        "q4_store_once": ("q4_tests", '''
SEEN = {}


def create_orders(db):
    db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, "
               "client_id TEXT, body TEXT)")


def store_order(db, client_id, body):
    if client_id in SEEN:  # remembered in this process only
        return SEEN[client_id], False
    SEEN[client_id] = db.execute("INSERT INTO orders (client_id, body) VALUES (?, ?)",
                                 (client_id, body)).lastrowid
    return SEEN[client_id], True
'''),
    },
    "06_channels_in_a_cluster": {
        "q1_should_deliver": ("q1_tests", '''
def should_deliver(mode, target, node_name):
    return target != node_name  # every mode treated as "except"
'''),
        "q2_copies_received": ("q2_tests", '''
def copies_received(names, sender):
    return [1] * len(names)  # assumes names are unique
'''),
        "q3_route": ("q3_tests", '''
def route(up, turn):
    for index in range(turn, len(up)):  # never wraps around
        if up[index]:
            return index, (turn + 1) % len(up)
    return None, (turn + 1) % len(up)
'''),
        "q4_catch_up_from": ("q4_tests", '''
def catch_up_from(ids, newest):
    got = set(ids)
    for message_id in range(1, max(ids) + 1):  # holes between received ids only
        if message_id not in got:
            return message_id - 1
    return None
'''),
    },
    "07_customizing_channels": {
        "q1_flushes": ("q1_tests", '''
def flushes(arrivals, window):
    result, buffer, due = [], [], None
    for at, number in arrivals:
        if due is not None and at > due:  # an arrival at the flush time joins the old window
            result.append((due, list(set(buffer))))  # a set's order, not first-seen order
            buffer, due = [], None
        if due is None:
            due = at + window
        buffer.append(number)
    if buffer:
        result.append((due, list(set(buffer))))
    return result
'''),
        "q2_dedupe_channel": ("q2_tests", '''
class DedupeChannel(Channel):
    window = 1.0
    intercept = ("number",)

    async def join(self, topic, payload):
        self.assigns["buffer"] = []
        return ok()

    async def handle_out(self, event, payload):
        self.assigns["buffer"].append(payload["number"])
        if len(self.assigns["buffer"]) == 1:
            self.send_after(self.window, "flush")
        return noreply()

    async def handle_info(self, msg):
        for number in dict.fromkeys(self.assigns["buffer"]):
            await self.push("number", {"number": number})
        return noreply()  # the buffer is never emptied: old numbers come back every window
'''),
        "q3_refresh_channel": ("q3_tests", '''
class RefreshChannel(Channel):
    secret = salt = None
    interval, max_age = 1.0, 3.0

    async def join(self, topic, payload):
        try:
            user_id = verify(self.secret, self.salt, (payload or {}).get("token"), self.max_age)
        except TokenError:
            return error({"reason": "unauthorized"})
        self.assigns["user_id"] = user_id
        self.assigns["task"] = asyncio.create_task(self.every_interval())  # never cancelled
        return ok()

    async def every_interval(self):
        while True:
            await asyncio.sleep(self.interval)
            self.send_info("push_token")

    async def handle_info(self, msg):
        token = sign(self.secret, self.salt, self.assigns["user_id"], max_age=self.max_age)
        await self.push("new_token", {"token": token})
        return noreply()
'''),
        "q4_fresh_params": ("q4_tests", '''
class FreshParams:
    def __init__(self, token):
        self.token = token
        self.cached = None

    def see(self, payload):
        self.token = payload["token"]

    def params(self):
        if self.cached is None:  # computed once, at the first join
            self.cached = {"token": self.token}
        return self.cached
'''),
    },
    "08_testing_channels": {
        "q1_auth_test": ("q1_tests", '''
async def auth_test(endpoint, secret):
    async with await connect(endpoint, {"token": sign(secret, SALT, 42)}) as sock:
        assert sock.assigns["user_id"] == 42
    assert await connect(endpoint, {"token": "nonsense"}) is None  # the only refusal tried
'''),
        "q2_wildcard_test": ("q2_tests", '''
async def wildcard_test(endpoint):
    async with await connect(endpoint) as sock:
        assert (await sock.join("wild:1:2")).status == "ok"
        assert (await sock.join("wild:1:1")).status == "error"  # only a B smaller than 2A
'''),
        "q3_dedupe_test": ("q3_tests", '''
async def dedupe_test(endpoint):
    async with await connect(endpoint) as sock:
        _, _, numbers = await sock.subscribe_and_join("dedupe:q3", {"window": 1.0})
        for n in [3, 1, 3, 2, 1]:
            await endpoint.broadcast("dedupe:q3", "number", {"number": n})
        await numbers.refute_push("number", timeout=0.99)
        for n in [3, 1, 2]:  # each takes the first *matching* push: the order goes unchecked
            await numbers.assert_push("number", {"number": n}, timeout=0.1)
        await numbers.refute_push("number", timeout=5)
'''),
    },
    "09_bug_hunt": {
        "q1_keep_bindings": ("q1_tests", '''
class KeepBindingsChannel(ForgetfulChannel):
    saved = None

    def rejoin(self, timeout=None):
        if self.saved is None:
            self.saved = list(self._bindings)  # a copy taken once, at the first rejoin
        super().rejoin(timeout)
        self._bindings = list(self.saved)
'''),
        "q2_keep_params": ("q2_tests", '''
class KeepParamsChannel(EmptyRejoinChannel):
    def rejoin(self, timeout=None):
        if not hasattr(self, "first_params"):
            self.first_params = self.params()  # the first join's payload, replayed forever
        self.join_push.payload = lambda: self.first_params
        Channel.rejoin(self, timeout)
'''),
        "q3_stay_registered": ("q3_tests", '''
class StayRegisteredSocket(UnregisteringSocket):
    def rejoin_channel(self, channel):
        super().rejoin_channel(channel)
        self.channels.append(channel)  # registered again, but its socket callbacks are gone
'''),
        "q4_quiet_socket": ("q4_tests", '''
class QuietSocket(StrayHeartbeatSocket):
    def disconnect(self, code=None, reason=None, callback=None):
        if self._heartbeat_timer is not None:  # fixed in disconnect() only
            self._heartbeat_timer.cancel()
        super().disconnect(code, reason, callback)
'''),
    },
}


# Taking *any* frame for the heartbeat reply is caught while practising, not at grading.
ANY_FRAME_MONITOR = '''
async def heartbeat_monitor(ws, interval):
    ref = 0
    while True:
        await asyncio.sleep(interval)
        ref += 1
        await ws.send(json.dumps([None, str(ref), "phoenix", "heartbeat", {}]))
        try:
            async with asyncio.timeout(interval):
                await ws.recv()  # any frame counts as a reply
        except TimeoutError:
            return
'''


def cell_by_id(nb: dict, grade_id: str) -> dict:
    """The cell with that nbgrader grade_id."""
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def with_answers(step: str, assignment: str, mistakes: dict[str, str], out: Path) -> Path:
    """solutions/ or exercises/ notebook, answered from solutions/, mistakes swapped in."""
    nb = json.loads(notebook(step, assignment).read_text(encoding="utf-8"))
    worked = json.loads(notebook("solutions", assignment).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell["source"] = MARKERS.sub("", "".join(cell_by_id(worked, meta["grade_id"])
                                                     ["source"]))
    for grade_id, code in mistakes.items():
        cell = cell_by_id(nb, grade_id)
        if grade_id == "q2_topic_keeper":  # a subclass keeps the given plumbing
            code = "".join(cell["source"]) + "\n\n" + code
        cell["source"] = code.strip("\n")
    path = out / f"{assignment}.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def failing_tests(path: Path, nb_source: Path) -> dict[str, str]:
    """grade_id -> the last line of the error, for each test cell the Validator fails."""
    results = validate(path)
    assert "changed" not in results, results["changed"]
    nb = json.loads(nb_source.read_text(encoding="utf-8"))
    # Every test cell opens with the same imports and guard(): tell them apart by whole source.
    ids = {"".join(c["source"]).strip(): c["metadata"]["nbgrader"]["grade_id"]
           for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    return {ids[f["source"].strip()]: ANSI.sub("", f["raw_error"]).strip().splitlines()[-1]
            for f in results.get("failed", [])}


@pytest.mark.parametrize("assignment", sorted(MISTAKES))
def test_visible_tests_let_the_mistakes_through(assignment, tmp_path):
    """With the mistakes in the released exercise every visible test still passes."""
    mistakes = {k: code for k, (_, code) in MISTAKES[assignment].items()}
    path = with_answers("exercises", assignment, mistakes, tmp_path)
    assert failing_tests(path, path) == {}


@pytest.mark.parametrize("assignment", sorted(MISTAKES))
def test_hidden_tests_catch_every_mistake(assignment, tmp_path):
    """With the hidden tests, exactly the questions holding a mistake fail."""
    mistakes = {k: code for k, (_, code) in MISTAKES[assignment].items()}
    path = with_answers("solutions", assignment, mistakes, tmp_path)
    expected = {test for test, _ in MISTAKES[assignment].values()}
    failed = failing_tests(path, path)
    assert set(failed) == expected
    # Each caught mistake is named by an assertion message, not a bare KeyError or assert.
    for test, last_line in failed.items():
        assert re.match(r"AssertionError: \S.{20,}", last_line), (test, last_line)


def test_a_monitor_that_takes_any_frame_for_the_reply_fails_a_visible_check(tmp_path):
    """ex02 Q4: in the released exercise (visible checks only) a monitor that treats any frame
    as the heartbeat reply fails, and the message says that is what it did."""
    path = with_answers("exercises", "02_unreliable_connections",
                        {"q4_heartbeat_monitor": ANY_FRAME_MONITOR}, tmp_path)
    failed = failing_tests(path, path)
    assert set(failed) == {"q4_tests"}, failed
    assert "it took another frame for the heartbeat reply" in failed["q4_tests"]
