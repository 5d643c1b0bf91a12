"""The learner release (issue 16): no worked answers, no hidden tests, still runnable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbgrading import ROOT

from mini_server.grading.release import LeakingRelease, build_release, problems

HIDDEN = b"BEGIN HIDDEN TESTS"  # nbgrader's delimiter, in every solutions/ notebook


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release, written by the documented command."""
    out = tmp_path_factory.mktemp("learners") / "channels-deep-dive"
    done = subprocess.run([sys.executable, "-m", "mini_server.grading", "release", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def files(root: Path) -> list[Path]:
    """Every file under ``root``."""
    return [p for p in root.rglob("*") if p.is_file()]


def test_the_repository_has_what_the_release_must_not():
    """The check below means something: the source notebooks do hold hidden tests."""
    assert any(HIDDEN in p.read_bytes() for p in files(ROOT / "solutions"))


def test_the_release_has_no_solutions_and_no_hidden_tests(release):
    """No solutions/ folder, and no file anywhere holds the hidden-test delimiter."""
    assert not [p for p in release.rglob("*") if p.name == "solutions"]
    leaking = [str(p.relative_to(release)) for p in files(release) if HIDDEN in p.read_bytes()]
    assert not leaking


def test_the_release_has_the_course_but_not_the_test_suite(release):
    """Chapters, exercises, the package and the install files are there; tests/ and bench/ not."""
    for name in ("chapters/00_start_here.ipynb", "mini_server/testing.py", "requirements.txt",
                 "pyproject.toml", "nbgrader_config.py", "README.md",
                 "exercises/01_sockets_and_channels/01_sockets_and_channels.ipynb"):
        assert (release / name).is_file(), name
    shipped = sorted(p.relative_to(ROOT) for p in (ROOT / "exercises").glob("*/*.ipynb"))
    assert sorted(p.relative_to(release) for p in (release / "exercises").glob("*/*.ipynb")) \
        == shipped, "the release must carry every exercise the repository has"
    for name in ("tests", "bench", "solutions"):
        assert not (release / name).exists(), name
    assert not list(release.rglob("__pycache__"))


def test_every_link_in_the_release_resolves(release):
    """No README or notebook link points at something the release lacks."""
    assert problems(release) == []


def test_the_release_readme_says_what_differs_and_where_self_study_is(release):
    """Learners read that this copy lacks the worked solutions and hidden tests."""
    readme = (release / "README.md").read_text()
    assert "no worked solutions and no hidden tests" in readme
    assert "self-study" in readme
    assert "pip install -r requirements.txt" in readme
    assert "Worked answers are in" not in readme  # the repository's self-study paragraph


def test_a_chapter_runs_from_the_release_with_its_own_package(release):
    """Chapter 00 executes headless from the release, importing mini_server from it."""
    path = release / "chapters" / "00_start_here.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import mini_server; print(mini_server.__file__)"))
    env = {**os.environ, "PYTHONPATH": str(release), "COURSE_FAST": "1"}
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert Path(printed.strip()).resolve().is_relative_to(release.resolve()), printed


def test_a_release_that_would_leak_is_refused(tmp_path):
    """A hidden-test delimiter anywhere in what is copied stops the release."""
    course = tmp_path / "course"
    for name in ("chapters", "exercises", "mini_server"):
        (course / name).mkdir(parents=True)
    for name in ("nbgrader_config.py", "pyproject.toml", "requirements.txt", ".gitignore"):
        (course / name).write_text("")
    (course / "README.md").write_text((ROOT / "README.md").read_text())
    (course / "exercises" / "notes.txt").write_bytes(b"### " + HIDDEN)
    with pytest.raises(LeakingRelease, match=r"exercises/notes\.txt holds hidden tests"):
        build_release(course, tmp_path / "out")


def test_a_release_replaces_an_old_one_but_keeps_its_git_folder(tmp_path):
    """Writing into a non-empty folder needs --force, which keeps .git (a release branch)."""
    out = tmp_path / "out"
    (out / ".git").mkdir(parents=True)
    (out / "stale.txt").write_text("from an older release")
    with pytest.raises(FileExistsError):
        build_release(ROOT, out)
    build_release(ROOT, out, force=True)
    assert (out / ".git").is_dir() and not (out / "stale.txt").exists()
    assert (out / "chapters" / "00_start_here.ipynb").is_file()
