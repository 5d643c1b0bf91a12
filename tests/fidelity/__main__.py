"""``python -m tests.fidelity [--url ws://127.0.0.1:4000] [-k NAME]``: replay the golden
Phoenix transcripts against any running server and print one verdict per scenario.

Without ``--url`` it starts ``python -m mini_server --port 0`` itself and stops it after.
Exit status 0 when every scenario matches (verdict other than DIFF) except the deliberate
deviations of PROTOCOL.md section 11, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # replay, runner, verdicts

from deviations import DELIBERATE, unexpected
from runner import host_port, run_file, summary
from server_process import cli_server
from verdicts import golden_files, load


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m tests.fidelity", description=__doc__)
    parser.add_argument("--url", help="server to test, ws://host:port (default: start "
                                      "python -m mini_server on a free port)")
    parser.add_argument("-k", dest="names", action="append", default=[],
                        help="replay only scenarios whose name contains this (repeatable)")
    parser.add_argument("--no-background", action="store_true",
                        help="skip background scenarios (the 60 s idle timeout)")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    """Replay every golden file; print verdicts and a summary per file."""
    args = parse_args(argv)

    def only(scenario: dict) -> bool:
        if args.no_background and scenario.get("background"):
            return False
        return not args.names or any(n in scenario["name"] for n in args.names)

    def report(result) -> None:
        print(result.explain(), flush=True)

    failed = False
    async with cli_server(args.url) as url:
        host, port = host_port(url)
        for path in golden_files():
            print(f"# {path} against {url}", flush=True)
            results = await run_file(load(path), host, port, only, report)
            print(f"# {summary(results)}; deliberate deviations: {', '.join(DELIBERATE)}")
            bad = unexpected(results)
            if bad:
                failed = True
                print(f"# unexpected DIFF: {', '.join(r.name for r in bad)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
