"""mini_server.testing: run_async survives what learners write; the shared helpers work."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from mini_server.server import Endpoint
from mini_server.testing import LearnerTimeout, RawClient, run_async, wait_until

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 0.5  # the timeout given to learner code in these tests


def run_async_threads() -> list[threading.Thread]:
    """Worker threads of run_async still alive."""
    return [t for t in threading.enumerate() if t.name == "run_async" and t.is_alive()]


def test_returns_the_result_of_a_coroutine():
    """A coroutine's return value comes back to the caller."""
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run_async(answer(), timeout=LIMIT * 4) == 42


def test_calls_a_sync_function_with_arguments_in_a_worker_thread():
    """A plain function is called with its arguments, in another thread."""
    caller = threading.get_ident()

    def where(a: int, *, b: int) -> tuple[int, bool]:
        return a + b, threading.get_ident() != caller

    assert run_async(where, 1, b=2, timeout=LIMIT * 4) == (3, True)


def test_awaits_what_a_function_returns():
    """An async function passed uncalled is called, then awaited."""
    async def double(x: int) -> int:
        return 2 * x

    assert run_async(double, 21, timeout=LIMIT * 4) == 42


def test_reraises_the_learner_assertion_unchanged():
    """A failing assert inside the coroutine reaches the caller with its message."""
    async def failing() -> None:
        raise AssertionError("server shows 0 channels")

    with pytest.raises(AssertionError, match="server shows 0 channels"):
        run_async(failing(), timeout=LIMIT * 4)


def test_a_coroutine_that_never_returns_times_out_and_cleans_up():
    """A stuck coroutine costs the timeout, is cancelled, and its finally block runs."""
    cleaned = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    started = time.monotonic()
    with pytest.raises(LearnerTimeout, match=r"coroutine did not finish within 0\.5 s: "
                                             r"an endless loop or a forgotten await\?"):
        run_async(stuck(), timeout=LIMIT)
    assert time.monotonic() - started < LIMIT + 2.0
    assert cleaned.is_set()
    assert not run_async_threads()


def test_a_sync_endless_loop_times_out_and_the_thread_is_stopped():
    """`while True: pass` in plain code costs the timeout and does not keep spinning."""
    def spin() -> None:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(LearnerTimeout, match=r"did not finish within 0\.5 s"):
        run_async(spin, timeout=LIMIT)
    assert time.monotonic() - started < LIMIT + 5.0
    assert not run_async_threads(), "the spinning worker thread is still alive"


def test_an_endless_loop_inside_a_coroutine_still_runs_its_cleanup():
    """A sync spin inside a coroutine is interrupted and the coroutine's finally runs."""
    cleaned = threading.Event()

    async def spin_inside() -> None:
        try:
            while True:
                pass
        finally:
            cleaned.set()

    with pytest.raises(LearnerTimeout):
        run_async(spin_inside(), timeout=LIMIT)
    assert cleaned.wait(5.0)
    assert not run_async_threads()


def test_a_returned_coroutine_is_reported_as_a_forgotten_await():
    """Returning a coroutine instead of its result names the forgotten await, warning-free."""
    async def inner() -> int:
        return 1

    async def forgot() -> object:
        return inner()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AssertionError, match="did you forget an await"):
            run_async(forgot, timeout=LIMIT * 4)


async def test_works_when_called_from_a_running_loop():
    """A notebook cell has a running loop; run_async still runs the coroutine elsewhere."""
    async def answer() -> str:
        return "done"

    assert run_async(answer(), timeout=LIMIT * 4) == "done"


def test_a_server_started_by_a_timed_out_check_is_stopped():
    """After a timeout the check's `async with Endpoint()` has stopped listening."""
    ports: list[int] = []

    async def check() -> None:
        async with Endpoint() as server:
            ports.append(server.port)
            await asyncio.Event().wait()

    with pytest.raises(LearnerTimeout):
        run_async(check(), timeout=LIMIT)
    assert ports
    assert refused(ports[0]), "the check's server still listens after the timeout"


def refused(port: int) -> bool:
    """True if connecting to 127.0.0.1:port is refused."""
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


async def test_wait_until_fails_with_the_given_message():
    """wait_until raises the caller's message when the condition stays false."""
    with pytest.raises(AssertionError, match="did you rejoin"):
        await wait_until(lambda: False, 0.05, "did you rejoin every channel?")


async def test_wait_until_returns_once_the_condition_holds():
    """wait_until returns as soon as the predicate is true."""
    flag = asyncio.Event()
    asyncio.get_running_loop().call_later(0.02, flag.set)
    await wait_until(flag.is_set, 2.0, "never set")


async def test_raw_client_joins_pushes_and_sees_broadcasts():
    """RawClient: join ok, ping reply by ref, a new_msg broadcast arrives as a push."""
    async with Endpoint() as server, await RawClient.connect(server.url) as client:
        assert await client.join("room:1") == {}
        ref = await client.push("room:1", "ping", {"n": 1})
        assert await client.assert_reply(ref, "ok") == {"n": 1}
        ref = await client.push("room:1", "new_msg", {"body": "hi"})
        assert await client.assert_push("new_msg") == {"body": "hi"}
        assert await client.assert_reply(ref, "ok") == {}


async def test_raw_client_assert_broadcast_skips_pushes_with_a_join_ref():
    """assert_broadcast waits for the null-ref fastlane frame; other frames stay readable."""
    async with Endpoint() as server, await RawClient.connect(server.url) as client:
        await client.join("room:1")
        ref = await client.push("room:1", "new_msg", {"body": "all"})
        assert await client.assert_broadcast("new_msg") == {"body": "all"}
        assert await client.assert_reply(ref, "ok") == {}
        with pytest.raises(AssertionError, match="a broadcast 'other'"):
            await client.assert_broadcast("other", timeout=0.2)


async def test_raw_client_assert_reply_names_the_unexpected_status():
    """assert_reply fails with the status and response it got."""
    async with Endpoint() as server, await RawClient.connect(server.url) as client:
        ref = await client.push("nope:1", "ping")
        with pytest.raises(AssertionError, match="unmatched topic"):
            await client.assert_reply(ref, "ok")


def warn_in_fresh_interpreter(setup: str) -> str:
    """stderr of a fresh interpreter that runs ``setup`` then logs a mini_server warning."""
    code = ("import logging\nfrom mini_server.testing import quiet_logs\n" + setup +
            "\nlogging.getLogger('mini_server.server').warning('boom')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=True)
    return done.stderr


def test_quiet_logs_keeps_warnings_out_of_stderr():
    """Without a handler a warning reaches stderr (nbgrader: zero); quiet_logs stops that."""
    assert "boom" in warn_in_fresh_interpreter("")
    assert "boom" not in warn_in_fresh_interpreter("quiet_logs()")


NOISY = '''
import asyncio, logging, sys, warnings
from mini_server.testing import run_async

def noisy(x):
    print("debug line", file=sys.stderr)
    warnings.warn("careful now")
    logging.warning("logged line")
    return x * 2

async def forgetful():
    asyncio.sleep(0)
    return 3

print("result", run_async(noisy, 21, timeout=5))
print("result", run_async(forgetful, timeout=5))
logging.getLogger("later").warning("after the check")
'''


def test_noise_from_learner_code_goes_to_stdout_labelled():
    """stderr, warnings, logging and un-awaited coroutines all reach stdout, none stderr."""
    done = subprocess.run([sys.executable, "-c", NOISY], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=True)
    assert done.stderr == ""
    out = done.stdout
    assert "note: your code wrote to stderr" in out and "debug line" in out
    assert "WARNING:root:logged line" in out
    assert "note: your code warned UserWarning: careful now" in out
    assert "hint: coroutine 'sleep' was never awaited: did you forget an await?" in out
    assert out.index("debug line") < out.index("result 42")  # shown with its own check
    assert "result 42" in out and "result 3" in out
    # the handler logging.warning made during the check keeps printing, on stdout
    assert "WARNING:later:after the check" in out


def test_a_replaced_run_async_is_reported_as_tampering():
    """Rebinding the package's run_async or a test cell's name for it fails guard()."""
    import mini_server.testing as testing
    from mini_server.testing import Tampered, guard

    namespace = {"run_async": lambda *a, **k: None, "guard": guard}
    with pytest.raises(Tampered, match="the notebook's run_async is not"):
        exec("guard()", namespace)
    genuine = testing.run_async
    testing.run_async = lambda *a, **k: None
    try:
        with pytest.raises(Tampered, match=r"mini_server\.testing\.run_async was replaced"):
            guard()
    finally:
        testing.run_async = genuine
    guard()  # restored: intact again


def test_using_binds_reference_answers_for_the_block_then_restores():
    """A question graded on its own sees the reference; the learner's own answer comes back."""
    from mini_server.testing import reference_encode_frame, using

    def learners(*fields):
        return str(list(fields))

    cell = {"encode_frame": learners, "using": using, "reference": reference_encode_frame}
    exec("with using(encode_frame=reference, join_frame=reference):\n"
         "    inside = encode_frame(None, '1', 't', 'e', {})\n"
         "    joined = join_frame is reference\n", cell)
    assert cell["inside"] == '[null,"1","t","e",{}]' and cell["joined"]
    assert cell["encode_frame"] is learners and "join_frame" not in cell
