"""The README's promises about setup: two commands, the same test command as CI, sane files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_MARKER = "# The README's test command"


def read(name: str) -> str:
    """Text of a repository file; a missing file fails the test with its name."""
    path = ROOT / name
    assert path.is_file(), f"{name} is missing from the repository root"
    return path.read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    """Non-blank, non-comment lines of the first fenced bash block under "## Quick start"."""
    readme = read("README.md")
    section = re.search(r"^## Quick start[ \t]*\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, 'README.md has no "## Quick start" section'
    block = re.search(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", section[1], re.M | re.S)
    assert block, 'the "Quick start" section has no fenced ```bash code block'
    return [line.strip() for line in block[1].splitlines()
            if line.strip() and not line.strip().startswith("#")]


def ci_test_command() -> str:
    """The line that follows the marker comment in .ci/run."""
    lines = read(".ci/run").splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(CI_MARKER):
            rest = [candidate.strip() for candidate in lines[index + 1:] if candidate.strip()]
            assert rest, f".ci/run has nothing after {CI_MARKER!r}"
            return rest[0]
    pytest.fail(f".ci/run lacks the comment {CI_MARKER!r} that marks the test command")


def test_quick_start_has_exactly_two_commands():
    """A learner types two commands: one opens the course, one runs the tests."""
    commands = quick_start_commands()
    assert len(commands) == 2, f"expected 2 commands in Quick start, found {commands}"


def test_first_command_installs_requirements_and_opens_jupyter_lab():
    """The first command installs requirements.txt and starts JupyterLab on the course."""
    first = quick_start_commands()[0]
    assert "pip install -r requirements.txt" in first
    assert "jupyter lab" in first
    assert first.index("pip install") < first.index("jupyter lab")


def test_second_command_installs_dev_requirements_and_runs_pytest():
    """The second command installs the test requirements and runs pytest."""
    second = quick_start_commands()[1]
    assert "pip install -r requirements-dev.txt" in second
    assert "pytest" in second
    assert second.index("pip install") < second.index("pytest")


def test_readme_test_command_is_the_one_ci_runs():
    """CI runs exactly the README's test command, so the README cannot rot."""
    assert quick_start_commands()[1] == ci_test_command()


def requirement_lines(name: str) -> list[str]:
    """Requirement lines of a requirements file, without comments or blanks."""
    lines = (line.split("#", 1)[0].strip() for line in read(name).splitlines())
    return [line for line in lines if line]


def test_requirements_install_the_course_package_itself():
    """requirements.txt installs mini_server from the checkout (an editable "-e ." line)."""
    assert "-e ." in requirement_lines("requirements.txt")


def test_requirements_pin_a_websockets_with_the_asyncio_api():
    """websockets >= 14 is required: the code uses websockets.asyncio.server / client."""
    pins = [line.replace(" ", "") for line in requirement_lines("requirements.txt")]
    assert any(re.fullmatch(r"websockets>=(1[4-9]|[2-9][0-9])(\.[0-9]+)*(,.*)?", pin)
               for pin in pins), f"no websockets>=14 pin in {pins}"


def test_requirements_include_jupyterlab_for_the_first_command():
    """The first Quick start command runs jupyter lab, so requirements.txt must install it."""
    names = [re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower()
             for line in requirement_lines("requirements.txt")]
    assert "jupyterlab" in names


def test_dev_requirements_include_the_course_requirements():
    """requirements-dev.txt pulls in requirements.txt so one command installs everything."""
    assert "-r requirements.txt" in requirement_lines("requirements-dev.txt")


@pytest.mark.parametrize("pattern", [
    "gradebook.db", "submitted/", "autograded/", "feedback/",
    ".ipynb_checkpoints/", "__pycache__/", "node_modules/", ".hypothesis/",
])
def test_gitignore_ignores_generated_files(pattern):
    """Grading outputs, caches and node_modules never get committed."""
    entries = {line.strip() for line in read(".gitignore").splitlines()}
    assert pattern in entries or pattern.rstrip("/") in entries


@pytest.mark.parametrize("folder", ["exercises", "solutions", "chapters"])
def test_gitignore_keeps_course_folders(folder):
    """The nbgrader release and source folders are committed, so they are never ignored."""
    entries = {line.strip().strip("/") for line in read(".gitignore").splitlines()}
    assert folder not in entries


def test_requirements_include_nbgrader_for_learners():
    """Learners validate whole exercises (`nbgrader validate`, the Validate button) after the
    first command, so nbgrader is in requirements.txt, not only in the test requirements."""
    names = [re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower()
             for line in requirement_lines("requirements.txt")]
    assert "nbgrader" in names
