"""Every core chapter runs headless in fast mode, without errors, and leaves nothing running."""

from __future__ import annotations

import re
import sys

import nbformat
import pytest
from notebook_runner import ChapterRun, run_chapter, run_notebook

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="inspects processes and ports through /proc")

CORE = ["00_start_here", "01_sockets_and_channels", "02_unreliable_connections",
        "03_channel_subscriptions", "04_reconnecting_well"]
# the core and the chapters written after it
WRITTEN = [*CORE, "05_keeping_data_alive", "06_channels_in_a_cluster",
           "07_customizing_channels", "08_testing_channels", "09_bug_hunt"]

_runs: dict[str, ChapterRun | BaseException] = {}


def executed(name: str) -> ChapterRun:
    """Run a chapter once per session (they are CPU-heavy); re-raise its failure if it failed."""
    if name not in _runs:
        try:
            _runs[name] = run_chapter(name)
        except Exception as exc:  # remembered so a second test on it fails the same way
            _runs[name] = exc
    result = _runs[name]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.mark.parametrize("name", WRITTEN)
def test_chapter_runs_headless_and_leaves_nothing_running(name):
    """The chapter executes without error; no port, child process or survivor is left."""
    run = executed(name)
    print(f"{name}: cells {run.seconds:.1f} s, with kernel start and shutdown {run.wall:.1f} s")
    assert not run.leftover_ports, f"still listening at the end: {run.leftover_ports}"
    assert not run.leftover_children, f"child processes left: {run.leftover_children}"
    assert not run.survivors, f"processes alive after kernel shutdown: {run.survivors}"
    assert not run.orphan_ports, f"ports held after kernel shutdown: {run.orphan_ports}"


@pytest.mark.parametrize(("name", "call"), [("00_start_here", "pieces()"),
                                          ("03_channel_subscriptions", "draw().figure"),
                                          ("04_reconnecting_well", "plot_herds(")])
def test_listed_diagrams_render_as_images(name, call):
    """Each listed diagram cell shows a PNG when run (a bare Figure repr means no picture)."""
    cells = [c for c in executed(name).notebook.cells
             if c.cell_type == "code" and call in c.source]
    assert cells, f"no cell calls {call}"
    assert any("image/png" in out.get("data", {}) for c in cells for out in c.outputs), (
        f"{call} showed no image: is %matplotlib inline active?")


def test_chapter_03_observes_the_seed_sequence():
    """Chapter 03 prints the server counts it observed: 1/3 -> 0/0 -> 1/0 -> 1/3."""
    text = executed("03_channel_subscriptions").text()
    found = re.findall(r"^observed: (.+)$", text, re.M)
    assert found == ["1/3 -> 0/0 -> 1/0 -> 1/3"], found


def test_chapter_03_measures_downtime_for_both_outages():
    """Chapter 03 prints a measured downtime for the kill and for the deploy, split into its
    three parts, and the parts add up (to rounding)."""
    text = executed("03_channel_subscriptions").text()
    number = r"(\d+\.\d{3})"
    for label in ("kill", "deploy"):
        found = re.search(rf"^{label}\s+downtime {number} s = cause {number} \+ reconnect "
                          rf"{number} \+ rejoin {number}$", text, re.M)
        assert found, label
        total, *parts = (float(value) for value in found.groups())
        assert abs(sum(parts) - total) <= 0.002, found[0]


def test_chapter_04_prints_the_herd_peak_reduction():
    """Chapter 04 reports 200 default connects in one 100 ms and a lower jittered peak."""
    text = executed("04_reconnecting_well").text()
    found = re.search(r"(\d+) connects with the default schedule, (\d+) with full jitter", text)
    assert found, "no peak comparison printed"
    assert int(found[1]) == 200 and int(found[2]) < int(found[1])


def test_chapter_04_windowed_jitter_gets_a_low_peak_and_the_quickest_all_back():
    """Chapter 04 section 3: on the same herd windowed jitter's peak is far below the
    default's and its last client is back sooner than with the default or full jitter."""
    text = executed("04_reconnecting_well").text()
    rows = {name.strip(): (int(peak), float(last)) for name, peak, last in re.findall(
        r"^(default|full jitter|windowed jitter)\s+(\d+)\s+[\d.]+s\s+([\d.]+)s\s+\d+$",
        text, re.M)}
    assert set(rows) == {"default", "full jitter", "windowed jitter"}, rows
    assert rows["windowed jitter"][0] * 4 < rows["default"][0]
    assert rows["windowed jitter"][1] < rows["default"][1] < rows["full jitter"][1]


def test_chapter_05_loses_messages_at_most_once_and_none_with_catch_up():
    """Chapter 05: the plain stream loses messages; the stored one misses none, no duplicates."""
    text = executed("05_keeping_data_alive").text()
    plain = re.search(r"^total: (\d+) sent, (\d+) received, (\d+) lost, 0 duplicates$", text, re.M)
    assert plain, "no at-most-once total printed"
    assert int(plain[3]) > 0 and int(plain[1]) == int(plain[2]) + int(plain[3])
    stored = re.search(r"^total: (\d+) stored and sent, (\d+) received, (\d+) of them replayed, "
                       r"0 duplicates, missing: none$", text, re.M)
    assert stored, "catch-up total missing, or it reports duplicates or missing messages"
    assert stored[1] == stored[2] and int(stored[3]) > 0


def test_chapter_05_keeps_the_database_counter_and_applies_a_retry_once():
    """Chapter 05: after kill -9 assigns restart and the database goes on; retries differ."""
    text = executed("05_keeping_data_alive").text()
    assert "after one more increment {'assigns': 1, 'database': 6}" in text
    assert "the database file says: 6" in text
    rows = re.findall(r"^rows stored for one order: (\d+)$", text, re.M)
    assert rows == ["2", "1"], f"naive retry then idempotent retry stored {rows}"
    assert "database folder left: False" in text


def test_runner_notices_a_server_and_a_process_left_running(tmp_path):
    """A notebook that forgets to clean up is caught: a listening port and a child process."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from mini_server.lab import servers\n"
        "kernel_server = await servers.start_server('leak')\n"
        "process_server = await servers.start_process_server('leak-process')")]
    path = tmp_path / "leaky.ipynb"
    nbformat.write(nb, path)
    run = run_notebook(path)
    assert run.leftover_ports, "the in-kernel server's port was not reported"
    assert any("process_server" in child for child in run.leftover_children)
    assert not run.survivors, "the process server outlived its kernel"


def test_chapter_06_crosses_nodes_loses_in_the_partition_and_repairs_the_gap():
    """Chapter 06: x hears node b; the partition loses messages for both; catch-up fills it."""
    text = executed("06_channels_in_a_cluster").text()
    assert "x (on node a) heard: ['hello from b']" in text
    assert "x and y both heard node c" in text
    row = r"^b cut from Valkey\s+\d+\.\d+\s+(\d+)\s+(\d+)\s+(\d+)$"
    partition = re.findall(row, text, re.M)
    assert len(partition) == 2, "no partition row for x and for y"
    # Most of the window is lost; its end is when the lab *saw* node b subscribed again
    # (polled), so the last messages in it may have arrived.
    assert all(0 < int(sent) // 2 <= int(lost) for sent, _, lost in partition), partition
    states = re.search(r"^client states seen during the partition: (.+)$", text, re.M)
    assert states and "errored" not in states[1] and "closed" not in states[1], states
    assert re.search(r"stored 1\.\.\d+; x missing [1-9]\d*: ids", text)  # after the figure
    assert re.search(r"^after the repair x is missing: none; received (\d+) distinct of \1 stored$",
                     text, re.M)
    assert "still running: nothing | Valkey running: False | database folder left: False" in text


def test_chapter_07_pushes_tokens_after_the_join_reply_and_rejoins_with_the_newest():
    """Chapter 07: reply, then new_token 1 2 3; the params function rejoins, the dict is expired."""
    text = executed("07_customizing_channels").text()
    pushes = re.findall(r"^  received \['(\d+)', (\S+), '(\w+)', n=(\S+)\]$", text, re.M)
    assert [(event, n) for _, _, event, n in pushes] == [
        ("phx_reply", "-"), ("new_token", "1"), ("new_token", "2"), ("new_token", "3")], pushes
    assert all(ref == "None" for _, ref, event, _ in pushes if event == "new_token"), pushes
    assert "token:ann: rejoin answered ok {'user_id': 'ann'}; now joined" in text
    assert "token:bob: rejoin answered error {'reason': 'expired'}; now errored" in text
    assert "ann's params function was called 2 times" in text


def test_chapter_07_stops_the_timer_and_keeps_assigns_per_channel():
    """Chapter 07: no timer after the leave; each channel its own user; counts restart."""
    text = executed("07_customizing_channels").text()
    assert "timers after the leave: 0 | tokens pushed since: 0" in text
    before = dict(re.findall(r"^before: token:(\w+) \{'pushed': (\d+), 'user_id': '\1'\}$",
                             text, re.M))
    assert set(before) == {"cara", "dan"} and int(before["cara"]) > int(before["dan"]), before
    after = re.findall(r"^after:  token:(\w+) \{'pushed': 1, 'user_id': '\1'\}$", text, re.M)
    assert after == ["cara", "dan"], "after the restart both counts start again from 1"
    assert "still running: nothing | timers left: 0" in text


def test_chapter_07_dedupes_per_subscriber_and_measures_intercept():
    """Chapter 07: the patient subscriber gets 1 2 3 4 once; the quick one more, unique per
    flush; intercepted pushes carry a join_ref, fastlane ones null; the ratio is printed."""
    text = executed("07_customizing_channels").text()
    assert re.search(r"^patient  saw 4 pushes: 1 2 3 4$", text, re.M)
    quick = re.search(r"^quick    saw (\d+) pushes: (.+)$", text, re.M)
    assert quick and int(quick[1]) > 4, quick
    flushes = [batch.split() for batch in quick[2].split(" | ")]
    assert all(len(set(batch)) == len(batch) for batch in flushes), flushes
    assert re.search(r'^intercepted: \["\d+",null,"dedupe:numbers","number"', text, re.M)
    assert re.search(r'^fastlane: +\[null,null,"room:wire","new_msg"', text, re.M)
    ratio = re.search(r"^ratio intercept/fastlane time: (\d+\.\d+)$", text, re.M)
    assert ratio and float(ratio[1]) > 0


def test_chapter_08_helpers_name_what_arrived_and_auth_refuses_all_but_the_valid_token():
    """Chapter 08: the failing assert_reply names the reply that came; only the valid token
    connects and every refusal is logged with its reason; the wildcard rules hold."""
    text = executed("08_testing_channels").text()
    assert re.search(r"^AssertionError: expected a reply to ref \d+ 'ok' \{'n': 2\} on "
                     r"room:lobby within 0\.1 s; arrived instead: reply to ref \d+ 'ok' "
                     r"\{\"n\": 1\}", text, re.M)
    verdicts = dict(re.findall(r"^(valid token|wrong salt|expired|missing|nonsense) +-> (\w+)",
                               text, re.M))
    assert verdicts == {"valid token": "accepted", "wrong salt": "refused", "expired": "refused",
                        "missing": "refused", "nonsense": "refused"}, verdicts
    reasons = re.findall(r"^server log: ! connect refused: (\w+)", text, re.M)
    assert reasons == ["invalid", "expired", "missing", "invalid"], reasons
    joins = dict(re.findall(r"^(wild\S*) +-> (\w+)", text, re.M))
    assert joins == {"wild:1:2": "ok", "wild:20:40": "ok", "wild:1:3": "error",
                     "wild:2:4:8": "error", "wild:2": "error", "wild:a:b": "error",
                     "wildcard": "error"}, joins
    assert "crashing join: JoinResult(status='error', reply={'reason': 'join crashed'}" in text
    assert "after a crash in handle_in: {'reason': 'channel_crash'}" in text


def test_chapter_08_controls_time_and_survives_two_outages():
    """Chapter 08: the dedupe window on the fake clock (3 1 2 at exactly 1 s, in far less real
    time), the hasty channel caught, two rejoins through the proxy, exact tick times."""
    text = executed("08_testing_channels").text()
    assert ("pushed after the window: [3, 1, 2] at t=1.000 s; the fake clock ended at 11.000 s"
            in text)
    real = re.search(r"^real time: (\d+) ms$", text, re.M)
    assert real and int(real[1]) < 1000, real
    assert re.search(r"^AssertionError: expected no push 'number' ANY on dedupe:test within "
                     r"0\.999 s, but got push 'number' \{\"number\": 3\}", text, re.M)
    assert len(re.findall(r"outage: rejoined, the observer heard it", text)) == 2
    assert "arrived instead: the connection closed (code 1006)" in text
    assert "tick n at fake time: [(1, 0.25), (2, 0.5), (3, 0.75)]" in text
    assert "still running: nothing" in text


def test_chapter_09_shows_each_planted_bug_by_its_symptom():
    """Chapter 09: each buggy client shows its report's symptom: a broadcast on the wire but not
    in the callback, a rejoin sent as {} and refused 'missing', a reply the unregistered channel
    never hears while the server holds it, a disconnected socket that reconnects by itself."""
    text = executed("09_bug_hunt").text()
    assert re.search(r"< room:1 new_msg \(None, None\) \{'body': 'after the deploy'\}", text)
    assert len(re.findall(r"^heard: \[\{'body': 'before the deploy'\}\]$", text, re.M)) == 2
    assert re.search(r"> token:ann phx_join \(\d+, \d+\) \{\}$", text, re.M)
    assert "{'reason': 'missing'}" in text
    assert re.search(r"^join payloads sent: \[\{'token': '[^']+'\}, \{\}", text, re.M)
    assert re.search(r"^client: errored \| server holds 1 socket\(s\), channels \{\}$", text, re.M)
    # a displayed panel's text repr ends without a newline: no ^ right after one
    assert re.search(r"wire: +room:2 phx_reply .*'status': 'ok'", text, re.M)
    assert re.search(r"^client: <Channel room:2 joining join_ref=\d+> \| registered with the "
                     r"socket: False$", text, re.M)
    assert re.search(r"= phoenix heartbeat \(None, \d+\) buffered until open$", text, re.M)
    assert re.search(r"not answered within [\d.]+ s: reconnecting", text)
    assert "server holds 1 socket(s), channels {}" in text.split("buffered until open")[1]
    assert text.rstrip().endswith("still running: nothing")
