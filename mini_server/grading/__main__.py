"""``python -m mini_server.grading``: write the learner release, or grade a room in isolation.

    python -m mini_server.grading release OUT_DIR [--course DIR] [--force]
    python -m mini_server.grading grade ASSIGNMENT [--course DIR] [--student ID ...]

Run from the course's checkout (or name it with ``--course``): the folder that holds
``nbgrader_config.py``, ``solutions/`` and, for ``grade``, ``gradebook.db`` and
``submitted/``.  ``grade`` prints one line per submission and a summary; it exits 0 when
every submission was graded, including those it names as needing attention.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m mini_server.grading",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    release = commands.add_parser("release", help="write the learner release into OUT_DIR")
    release.add_argument("out", type=Path, metavar="OUT_DIR")
    release.add_argument("--course", type=Path, default=Path("."),
                         help="the course checkout (default: the current folder)")
    release.add_argument("--force", action="store_true",
                         help="replace OUT_DIR's contents (a .git entry is kept)")
    grade = commands.add_parser("grade", help="autograde each submission in isolation")
    grade.add_argument("assignment", metavar="ASSIGNMENT")
    grade.add_argument("--course", type=Path, default=Path("."),
                       help="the course checkout (default: the current folder)")
    grade.add_argument("--student", action="append", default=None, metavar="ID",
                       help="grade only this student (repeatable; default: every submission)")
    grade.add_argument("--timeout", type=float, default=900.0,
                       help="seconds one submission's autograde may take (default: 900)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = parse_args(argv)
    if args.command == "release":
        from mini_server.grading.release import build_release

        files = build_release(args.course, args.out, force=args.force)
        print(f"wrote the learner release ({len(files)} files) to {args.out}")
        return 0
    from mini_server.grading.isolate import grade

    grade(args.assignment, args.course, args.student, timeout=args.timeout,
          report=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
