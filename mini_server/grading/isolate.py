"""Isolated grading: each submission autograded in a throwaway course, scores recorded outside.

Theory of operation
-------------------
``nbgrader autograde`` runs every learner's notebook in a kernel whose working directory is
``autograded/STUDENT/ASSIGNMENT`` inside the teacher's course: ``../../../solutions`` holds the
worked answers, ``../../../gradebook.db`` the whole room's grades, ``../../../submitted`` every
other learner's notebook.  :func:`grade` runs the same autograde, one submission at a time, in
a course directory made for that submission alone and deleted afterwards:

* the learner release (:mod:`mini_server.grading.release`: no ``solutions/``, no hidden
  tests), with the assignment's non-notebook files as nbgrader's source folder;
* a fresh gradebook holding only the assignment's structure, copied from the teacher's
  (:func:`~mini_server.grading.gradebooks.copy_assignment`);
* only this learner's submitted files, read into memory before the first run, so a
  submission that overwrites another's file on disk cannot change what that one is graded on.

nbgrader runs in its own process (``python -P -m nbgrader autograde``, the release's
``mini_server`` on the kernel's path).  Its Execute step is :class:`IsolatedExecute`: on
Linux it makes nbgrader's process the *subreaper* of everything the kernel starts, and once
the kernel is shut down it kills whatever is left (a process the learner detached), before
nbgrader saves the grades.  Then, from this process, the auto scores are read from the
throwaway gradebook and notebook and written into the teacher's gradebook with nbgrader's
API (:func:`~mini_server.grading.gradebooks.record`); the autograded notebook is copied back
for ``generate_feedback``.  :class:`~mini_server.grading.teacher_files.TeacherFiles` notices
and undoes any write to the teacher's gradebook or submitted/autograded files during a run.

Each submission's line in the report names what went wrong: tampering found (the submission
is flagged in the gradebook), or a run that could not be scored (its auto scores are 0).
Grading goes on with the next submission either way.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets.config.loader import PyFileConfigLoader

from mini_server.grading import gradebooks
from mini_server.grading.release import build_release
from mini_server.grading.teacher_files import TeacherFiles

__all__ = ["AUTOGRADE_PREPROCESSORS", "IsolatedExecute", "Result", "grade"]

# The kernel's PYTHONPATH, handed to IsolatedExecute by the parent (nbgrader's own process
# imports the grader from the teacher's checkout; the kernel gets the release's package).
KERNEL_PATH = "MINI_SERVER_GRADING_KERNEL_PATH"
PR_SET_CHILD_SUBREAPER = 36


def _become_subreaper() -> bool:
    """Orphans of everything this process starts become its children (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.append(int(entry.name))
    return found


def end_leftovers(deadline: float = 5.0) -> list[int]:
    """Kill and reap every child of this process (the kernel's detached leftovers)."""
    if not Path("/proc").is_dir():
        return []
    ended: set[int] = set()
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        kids = _children(os.getpid())
        if not kids:
            break
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in kids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        ended.update(kids)
        time.sleep(0.01)  # an orphan is re-parented to us only once its parent has died
    return sorted(ended)


class IsolatedExecute(Execute):
    """nbgrader's Execute, with the kernel on the release's path and no survivors after it."""

    def preprocess(self, nb, resources):
        """Run the notebook; then end every process the kernel left behind."""
        _become_subreaper()
        if KERNEL_PATH in os.environ:
            os.environ["PYTHONPATH"] = os.environ[KERNEL_PATH]
        try:
            return super().preprocess(nb, resources)
        finally:
            end_leftovers()


# nbgrader's own autograde steps, with IsolatedExecute in place of Execute
AUTOGRADE_PREPROCESSORS = [
    IsolatedExecute if step is Execute else step
    for step in Autograde.autograde_preprocessors.default()
]
_CONFIG = """

# Added by mini_server.grading for one isolated autograde run.
from mini_server.grading.isolate import AUTOGRADE_PREPROCESSORS as _ISOLATED

c.Autograde.autograde_preprocessors = _ISOLATED
# nbgrader's source folder: the exercise's non-notebook files only, never the solutions
c.CourseDirectory.source_directory = "source"
"""
DB = "gradebook.db"


@dataclass
class Result:
    """How one submission was graded."""

    student: str
    score: float
    max_score: float
    seconds: float
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line of the report."""
        text = f"{self.student}: {self.score:g} / {self.max_score:g} ({self.seconds:.1f} s)"
        return text + ("" if not self.problems else " NEEDS ATTENTION: " + "; ".join(self.problems))


def _coursedir(course: Path, root: Path | None = None) -> CourseDirectory:
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    return CourseDirectory(config=config, root=str(root or course))


def _sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _read_tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _autograde(place: Path, assignment: str, student: str, timeout: float) -> tuple[int, str]:
    """``nbgrader autograde`` for one student in ``place``; (exit status, its log)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])  # this grader, not the release's
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env[KERNEL_PATH] = str(place)  # the release's mini_server, nothing of the teacher's
    # A home of its own: what the kernel writes through ~ (IPython startup files, a user
    # site-packages .pth, Jupyter kernelspecs) cannot reach the next submission's run.
    env["HOME"] = str(place.parent / "home")
    env["PYTHONNOUSERSITE"] = "1"
    (place.parent / "home").mkdir(exist_ok=True)
    command = [sys.executable, "-P", "-m", "nbgrader", "autograde", assignment,
               "--student", student]
    child = subprocess.Popen(command, cwd=place, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        log, _ = child.communicate(timeout=timeout)
        status = child.returncode
    except subprocess.TimeoutExpired:
        status, log = -1, f"autograde took longer than {timeout:g} s and was killed".encode()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # the session nbgrader and its kernel ran in
        child.wait()
    return status, log.decode(errors="replace")


_RAISED = re.compile(r"^\s*((?:[\w.]+\.)?\w*(?:Error|Exception|Entry)\b.*)$")


def _failure(log: str) -> str:
    """The exception nbgrader's log ends with, else its last error line."""
    lines = log.splitlines()
    raised = [m[1] for m in map(_RAISED.match, lines) if m]
    errors = [line.split("]", 1)[-1].strip() for line in lines if "| ERROR]" in line]
    return (raised or errors or lines[-1:] or ["no output"])[-1 if raised else 0][:160]


def grade(
    assignment: str,
    course: Path = Path("."),
    students: list[str] | None = None,
    *,
    timeout: float = 900.0,
    report: Callable[[str], None] = print,
) -> list[Result]:
    """Autograde every submission of ``assignment`` in isolation; record the auto scores."""
    course = Path(course).resolve()
    teacher = _coursedir(course)
    url, course_id = teacher.db_url, teacher.course_id
    gradebook = _sqlite_path(url)
    if gradebook is not None and not gradebook.is_file():
        raise SystemExit(f"no gradebook at {gradebook}: run nbgrader generate_assignment first")
    if not gradebooks.exists(url, course_id, assignment):
        raise SystemExit(f"the gradebook has no assignment {assignment!r}: run "
                         f"`nbgrader generate_assignment {assignment}` first")
    submitted = Path(teacher.format_path(teacher.submitted_directory, "*", assignment))
    found = sorted(p.parent.name for p in course.glob(str(submitted.relative_to(course))))
    students = sorted(students) if students else found
    # every learner's files, read before any learner code runs
    handed_in = {
        s: _read_tree(Path(teacher.format_path(teacher.submitted_directory, s, assignment)))
        for s in students
    }
    maxima = gradebooks.max_scores(url, course_id, assignment)
    max_score = sum(points for points, _ in maxima.values())
    kept = TeacherFiles(course, gradebook, [
        str(Path(teacher.format_path(d, "*", assignment)).relative_to(course))
        for d in (teacher.submitted_directory, teacher.autograded_directory)
    ])
    results = []
    with tempfile.TemporaryDirectory(prefix="grading-") as work:
        release = Path(work) / "release"
        build_release(course, release)
        template = Path(work) / "gradebook.db"
        gradebooks.copy_assignment(url, course_id, f"sqlite:///{template}", assignment)
        for student in students:
            if not handed_in[student]:
                results.append(Result(student, 0.0, max_score, 0.0, ["nothing handed in"]))
                report(results[-1].line())
                continue
            result = _grade_one(student, assignment, handed_in[student], release, template,
                                teacher, maxima, max_score, kept, timeout)
            results.append(result)
            report(result.line())
    flagged = [r.student for r in results if r.problems]
    report(f"graded {len(results)} submissions of {assignment}; "
           + (f"needs attention: {', '.join(flagged)}" if flagged else "nothing to look at"))
    return results


def _grade_one(student, assignment, files, release, template, teacher, maxima, max_score,
               kept, timeout) -> Result:
    started = time.monotonic()
    problems = [f"changed the teacher's {name} (put back)" for name in kept.restore()]
    with tempfile.TemporaryDirectory(prefix=f"grading-{student}-") as work:
        place = Path(work) / "course"
        shutil.copytree(release, place, symlinks=False)
        with (place / "nbgrader_config.py").open("a", encoding="utf-8") as config:
            config.write(_CONFIG)
            config.write(f"c.CourseDirectory.root = {str(place)!r}\n")
            config.write(f"c.CourseDirectory.db_url = {'sqlite:///' + str(place / DB)!r}\n")
        own = _coursedir(place, place)
        exercise = Path(own.format_path(own.release_directory, ".", assignment))
        source = Path(own.format_path(own.source_directory, ".", assignment))
        source.mkdir(parents=True, exist_ok=True)  # nbgrader copies its non-notebook files
        if exercise.is_dir():
            for path in exercise.rglob("*"):
                if path.is_file() and path.suffix != ".ipynb":
                    target = source / path.relative_to(exercise)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
        shutil.copy2(template, place / DB)
        mine = Path(own.format_path(own.submitted_directory, student, assignment))
        _write_tree(mine, files)
        timestamp = own.get_existing_timestamp(str(mine))
        status, log = _autograde(place, assignment, student, timeout)
        # what the run did to the teacher's files, before anything is read or recorded
        problems += [f"changed the teacher's {name} (put back)" for name in kept.restore()]
        autograded = Path(own.format_path(own.autograded_directory, student, assignment))
        scores = gradebooks.read_scores(f"sqlite:///{place / DB}", own.course_id,
                                        autograded, assignment, student, maxima)
        if status != 0:
            scores.problems.insert(0, f"autograde failed: {_failure(log)}")
        if status != 0 or scores.damaged:  # nothing from this run can be trusted: score 0
            scores.auto = {k: (0.0 if v is not None else None) for k, v in scores.auto.items()}
        problems += scores.problems
        gradebooks.record(teacher.db_url, teacher.course_id, assignment, student, scores,
                          timestamp=timestamp, flag=bool(problems))
        _copy_back(autograded, Path(teacher.format_path(teacher.autograded_directory, student,
                                                         assignment)), {nb for nb, _ in maxima})
    kept.keep()
    return Result(student, scores.total(), max_score, time.monotonic() - started, problems)


def _copy_back(source: Path, target: Path, notebooks: set[str]) -> None:
    """The autograded notebooks, as regular files, for generate_feedback."""
    if target.is_symlink():
        target.unlink()
    if target.is_dir():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in notebooks:
        path = source / f"{name}.ipynb"
        if path.is_file() and not path.is_symlink():
            (target / path.name).write_bytes(path.read_bytes())
