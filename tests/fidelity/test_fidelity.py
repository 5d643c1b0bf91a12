"""The bundled server answers as real Phoenix 1.8.12 did, scenario by scenario.

The golden transcripts (``../shared/fidelity``, vendored in ``golden/``) are replayed
against ``python -m mini_server`` started as the CLI contract says, with Phoenix's own
timings: the idle-timeout scenario waits the real 60 s, in the background while the others
run, shared out over three servers, so the file takes little more than that minute.  Every
scenario must match (verdict same, cosmetic or texts) except those named in
``deviations.DELIBERATE`` (PROTOCOL.md section 11).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from deviations import DELIBERATE, unexpected
from runner import host_port, run_file, summary
from server_process import cli_server
from verdicts import golden_files, load

GOLDEN = golden_files()
SHARDS = 3  # servers replaying a file side by side


@pytest.mark.timeout(900)  # the file replays in about two minutes; a loaded machine is slower
@pytest.mark.parametrize("path", GOLDEN, ids=[p.name for p in GOLDEN])
async def test_every_scenario_replays_as_phoenix_answered(path):
    """Each recorded scenario matches, except the deliberate deviations, which still differ."""
    golden = load(path)
    order = {s["name"]: n for n, s in enumerate(golden["scenarios"])}
    async with contextlib.AsyncExitStack() as stack:
        # Scenarios mostly wait (for a reply, or for quiet), so SHARDS servers, each replaying
        # its share in file order, cut the wall time; no server ever sees two shards' frames.
        urls = [await stack.enter_async_context(cli_server()) for _ in range(SHARDS)]
        shards = await asyncio.gather(*(
            run_file(golden, *host_port(url),
                     only=lambda s, k=k: order[s["name"]] % SHARDS == k)
            for k, url in enumerate(urls)))
    results = sorted((r for shard in shards for r in shard), key=lambda r: order[r.name])
    print(f"\nfidelity {path.name}: {summary(results)}")
    for result in results:
        if result.verdict != "same":
            print("  " + result.explain())
    bad = unexpected(results)
    assert not bad, "scenarios that differ from Phoenix:\n" + "\n".join(
        r.explain() for r in bad)
    by_name = {r.name: r for r in results}
    for name in DELIBERATE:
        if name in by_name:  # the deviation is real: if it vanished, update PROTOCOL.md 11
            assert by_name[name].verdict == "DIFF", f"{name} now matches: drop the deviation"
    assert len(results) == golden["scenario_count"]


def test_there_are_golden_transcripts_to_replay():
    """The replayer finds at least the vendored Phoenix 1.8.12 file."""
    assert any(p.name == "phoenix-1.8.12.json" for p in GOLDEN)


async def test_replayer_catches_a_server_that_answers_otherwise():
    """With check_origin off the server accepts foreign Origins, and the replay says DIFF."""
    golden = load(GOLDEN[0])
    async with cli_server(None, "--check-origin", "false") as url:
        host, port = url.removeprefix("ws://").split(":")
        results = await run_file(golden, host, int(port),
                                 only=lambda s: s["name"].startswith("hs_origin"))
    verdicts = {r.name: r.verdict for r in results}
    assert verdicts == {"hs_origin_absent": "same", "hs_origin_localhost": "same",
                        "hs_origin_localhost_noport": "same",
                        "hs_origin_localhost_https_other_port": "same",
                        "hs_origin_127": "DIFF", "hs_origin_sub": "DIFF", "hs_origin_null": "DIFF"}


async def test_without_a_frame_limit_the_oversize_scenario_replays_as_phoenix():
    """The one deviation is only the limit: with --max-frame-size 0 (Phoenix's default,
    unlimited) the 1.5 MiB ping is echoed exactly as Phoenix echoed it."""
    golden = load(GOLDEN[0])
    async with cli_server(None, "--max-frame-size", "0") as url:
        host, port = url.removeprefix("ws://").split(":")
        (result,) = await run_file(golden, host, int(port),
                                   only=lambda s: s["name"] == "v2_oversize")
    assert result.verdict == "same", result.explain()
