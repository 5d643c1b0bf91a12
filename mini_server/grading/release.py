"""The learner release: the course as learners get it for a graded workshop.

Theory of operation
-------------------
The repository is the self-study course: it ships the worked answers and the hidden tests
(``solutions/``, nbgrader's source).  In a graded workshop those must not reach learners, so
:func:`build_release` writes a separate folder, one a teacher commits to a branch and points
nbgitpuller at, holding only what the chapters and exercises need:

* ``chapters/``, ``exercises/`` (nbgrader's release, generated from ``solutions/``), the
  ``mini_server`` package, ``pyproject.toml`` and ``requirements.txt`` (its ``-e .`` line
  installs the package from the folder), ``nbgrader_config.py`` (the Validate button and
  ``nbgrader validate`` read its timeouts) and ``.gitignore``;
* a README of its own, made from the sections of the repository's README that are marked
  ``<!-- learner-release:start -->`` ... ``<!-- learner-release:end -->``, under a header
  that says what this copy lacks and where the full course is.

Never copied: ``solutions/``, ``tests/``, ``bench/``, caches.  :func:`problems` checks a
written release (no ``solutions/`` folder, no hidden-test delimiter in any file, every
relative link in the README and the notebooks resolves) and :func:`build_release` refuses
to finish while it finds any.  Isolated grading (:mod:`mini_server.grading.isolate`)
builds its throwaway course directories from the same release.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

__all__ = ["COPIED", "LeakingRelease", "build_release", "grading_checkout", "problems"]

# What learners get, relative to the course root.
COPIED = (
    "chapters",
    "exercises",
    "mini_server",
    "nbgrader_config.py",
    "pyproject.toml",
    "requirements.txt",
    ".gitignore",
)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
# nbgrader's default delimiter of hidden tests, spelled so that this file does not contain it.
HIDDEN_DELIMITER = re.compile(rb"BEGIN\s+HIDDEN\s+TESTS", re.I)
_MARKED = re.compile(
    r"^<!-- learner-release:start -->\n(.*?)^<!-- learner-release:end -->\n", re.M | re.S
)
_LINK = re.compile(r"\]\(([^)\s]+)\)")

HEADER = """\
# Channels Deep Dive: learner release

{intro}
## This copy

This folder is the course as learners get it for a graded workshop, written from the full
repository by `python -m mini_server.grading release`. It differs from the full repository:
it has **no worked solutions and no hidden tests** (the repository's `solutions/` folder),
and no test suite or benchmarks. Each exercise's visible checks are all here; grading also
runs hidden checks. For self-study, use the full repository instead: its worked solutions
are part of the course.

## Quick start

You need Python 3.11 or newer. From this folder, install the course and open it:

```bash
{learner_command}
```

Jupyter refuses to run as root (in a container, say); there, add `--allow-root` at the end.

"""


class LeakingRelease(RuntimeError):
    """A written release still holds something learners must not get."""


def _readme(course: Path) -> str:
    text = (course / "README.md").read_text(encoding="utf-8")
    sections = _MARKED.findall(text)
    if not sections:
        raise ValueError("README.md has no <!-- learner-release:start --> sections to copy")
    quick = re.search(r"^## Quick start.*?^```bash\n(.*?)\n", text, re.M | re.S)
    if quick is None:
        raise ValueError("README.md has no Quick start command to copy")
    intro, *rest = (s.rstrip("\n") + "\n" for s in sections)
    return HEADER.format(intro=intro, learner_command=quick[1].strip()) + "\n".join(rest)


def _links(path: Path) -> list[str]:
    if path.suffix == ".md":
        texts = [path.read_text(encoding="utf-8")]
    else:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return [m for text in texts for m in _LINK.findall(text)]


def _files(root: Path) -> list[Path]:
    """Every file under ``root`` except a git checkout's own."""
    return sorted(
        p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts
    )


def problems(release: Path) -> list[str]:
    """What is wrong with a written release (empty: fit for learners)."""
    found = []
    files = _files(release)
    folders = {part for p in files for part in p.relative_to(release).parts[:-1]}
    if "solutions" in folders or (release / "solutions").exists():
        found.append("it has a solutions/ folder")
    for path in files:
        if HIDDEN_DELIMITER.search(path.read_bytes()):
            found.append(f"{path.relative_to(release)} holds hidden tests")
        if path.suffix in (".md", ".ipynb"):
            for link in _links(path):
                target = link.split("#", 1)[0]
                if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # an anchor or a URL
                if not (path.parent / target).exists():
                    found.append(f"{path.relative_to(release)} links to missing {target}")
    return found


def grading_checkout(course: Path, out: Path, assignment: str) -> None:
    """A teacher's copy of ``course`` in ``out``: what learners get, the full README and the
    source of one ``assignment`` (run ``nbgrader generate_assignment`` in it next)."""
    for name in (*COPIED, "README.md"):
        source = Path(course) / name
        if source.is_dir():
            shutil.copytree(source, Path(out) / name, ignore=_IGNORED, symlinks=False)
        else:
            shutil.copy2(source, Path(out) / name)
    shutil.copytree(Path(course) / "solutions" / assignment,
                    Path(out) / "solutions" / assignment, ignore=_IGNORED)


def build_release(course: Path, out: Path, *, force: bool = False) -> list[Path]:
    """Write the learner release of ``course`` into ``out``; returns the files written.

    ``out`` must be empty or absent; with ``force`` its contents are replaced, except a
    ``.git`` entry, so a release can be written into a checkout of a release branch.
    """
    course, out = Path(course).resolve(), Path(out).resolve()
    if out == course or course in out.parents:
        raise ValueError(f"write the release outside the course folder, not into {out}")
    if out.exists() and any(p.name != ".git" for p in out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} is not empty (use --force to replace its contents)")
        for entry in out.iterdir():
            if entry.name == ".git":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        source = course / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=_IGNORED, symlinks=False)
        elif source.is_file():
            shutil.copy2(source, out / name)
        else:
            raise FileNotFoundError(f"the course has no {name}")
    (out / "README.md").write_text(_readme(course), encoding="utf-8")
    found = problems(out)
    if found:
        raise LeakingRelease(f"{out} is not fit for learners: " + "; ".join(found))
    return _files(out)
