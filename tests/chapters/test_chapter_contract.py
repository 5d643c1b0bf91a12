"""The chapter contract (COURSE.md), checked on the committed notebooks without running them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from notebook_runner import CHAPTERS

CORE = ["00_start_here", "01_sockets_and_channels", "02_unreliable_connections",
        "03_channel_subscriptions", "04_reconnecting_well"]
# the core and the chapters written after it
WRITTEN = [*CORE, "05_keeping_data_alive", "06_channels_in_a_cluster",
           "07_customizing_channels", "08_testing_channels", "09_bug_hunt"]
CHALLENGE = "**Predict, then run.**"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|(?:href|src)=\"([^\"]+)\"")


@cache
def load(name: str) -> nbformat.NotebookNode:
    """The committed notebook, read once (fails with its name if it is missing)."""
    path = CHAPTERS / f"{name}.ipynb"
    assert path.is_file(), f"chapter {path.name} is missing from chapters/"
    return nbformat.read(path, as_version=4)


def markdown(name: str) -> list[str]:
    """Sources of the chapter's markdown cells, in order."""
    return [c.source for c in load(name).cells if c.cell_type == "markdown"]


def section(cells: list[str], heading: str) -> str:
    """Text from a '## heading' up to the next '## ' heading (across cells)."""
    text = "\n".join(cells)
    found = re.search(rf"^## {re.escape(heading)}[ \t]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert found, f"no '## {heading}' section"
    return found[1]


@pytest.mark.parametrize("name", WRITTEN)
def test_chapter_starts_with_its_numbered_title(name):
    """The first cell is the '# NN · title' heading."""
    first = load(name).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith(f"# {name[:2]} "), first.source.splitlines()[0]


@pytest.mark.parametrize("name", WRITTEN)
def test_chapter_opens_with_questions_objectives_and_time(name):
    """The title cell carries Questions, Objectives and Time, in that order."""
    title = markdown(name)[0]
    positions = [title.find(label) for label in ("**Questions**", "**Objectives**", "**Time**")]
    assert -1 not in positions, f"title cell lacks one of Questions/Objectives/Time: {positions}"
    assert positions == sorted(positions)


@pytest.mark.parametrize("name", WRITTEN)
def test_chapter_has_key_points_check_yourself_and_going_further(name):
    """Key points, Check yourself and Going further sections exist, in that order."""
    text = "\n".join(markdown(name))
    positions = [text.find(f"## {h}") for h in ("Key points", "Check yourself", "Going further")]
    assert -1 not in positions, f"missing a closing section: {positions}"
    assert positions == sorted(positions)


@pytest.mark.parametrize("name", WRITTEN)
def test_check_yourself_asks_three_to_five_questions_with_hidden_answers(name):
    """Check yourself has 3-5 numbered questions and a collapsed <details> answers cell."""
    cells = markdown(name)
    questions = re.findall(r"^\d+\. ", section(cells, "Check yourself").split("<details>")[0],
                           re.M)
    assert 3 <= len(questions) <= 5, f"{len(questions)} questions"
    answers = [c for c in cells if c.lstrip().startswith("<details><summary>Answers</summary>")]
    assert len(answers) == 1, "expected one collapsed '<details><summary>Answers' cell"
    assert len(re.findall(r"^\d+\. ", answers[0], re.M)) == len(questions)


@pytest.mark.parametrize("name", WRITTEN)
def test_chapter_is_committed_without_outputs(name):
    """No code cell carries outputs or an execution count."""
    dirty = [i for i, c in enumerate(load(name).cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells {dirty} have outputs or execution counts: clear them"


@pytest.mark.parametrize("name", WRITTEN)
def test_every_relative_link_resolves_to_a_file(name):
    """Each relative link in the markdown points at an existing file in the repository."""
    missing = []
    for cell in markdown(name):
        for match in LINK.finditer(cell):
            target = match[1] or match[2]
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not parts.path:
                continue  # web links and in-page anchors
            if not (CHAPTERS / unquote(parts.path)).resolve().is_file():
                missing.append(target)
    assert not missing, f"links to missing files: {missing}"


@pytest.mark.parametrize("name", WRITTEN[1:])
def test_chapter_links_its_exercise(name):
    """Chapters 01 onwards link exercises/NN_slug/NN_slug.ipynb."""
    target = f"../exercises/{name}/{name}.ipynb"
    assert any(f"]({target})" in cell for cell in markdown(name)), f"no link to {target}"


@pytest.mark.parametrize("name", WRITTEN)
def test_chapter_has_instructor_notes_and_a_setup_heading(name):
    """A '## Setup' section precedes the body; chapters with a body carry an Instructor note."""
    cells = markdown(name)
    assert any(c.startswith("## Setup") for c in cells[:4]), "no '## Setup' near the top"
    assert any("**Instructor note.**" in c for c in cells), "no Instructor note callout"


@pytest.mark.parametrize("name", WRITTEN)
def test_last_code_cell_stops_every_server(name):
    """The final code cell stops what the chapter started (servers.stop_all())."""
    last = [c for c in load(name).cells if c.cell_type == "code"][-1]
    assert "await servers.stop_all()" in last.source


def test_readme_course_map_links_every_core_chapter():
    """README's '## Course map' follows Quick start and links each core chapter."""
    readme = (Path(CHAPTERS).parent / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", readme, re.M)
    assert "Course map" in headings, "README has no '## Course map' section"
    assert headings.index("Course map") == headings.index("Quick start") + 1
    course_map = section(readme.split("\n"), "Course map")
    for name in CORE:
        assert f"(chapters/{name}.ipynb)" in course_map, f"course map lacks {name}"


def test_chapter_01_links_chapter_07_where_it_points_at_it():
    """ch01's pointer to server pushes (chapter 07) is a link now that the chapter exists."""
    text = "\n".join(markdown("01_sockets_and_channels"))
    assert "chapter 07" not in text.replace("[chapter 07](07_customizing_channels.ipynb)", "")
    assert "[chapter 07](07_customizing_channels.ipynb)" in text


def teaching_minutes(name: str) -> int:
    """The teaching minutes the title cell's Time line states."""
    found = re.search(r"\*\*Time\*\*: (\d+) min teaching", markdown(name)[0])
    assert found, "the Time line does not say 'NN min teaching'"
    return int(found[1])


@pytest.mark.parametrize("name", WRITTEN)
def test_an_inline_challenge_every_ten_minutes_of_teaching(name):
    """'Predict, then run' challenges with a collapsed answer: one per 10 min of teaching time,
    each before a code cell (the one that shows the answer), none in the closing sections."""
    cells = load(name).cells
    closing = next(i for i, c in enumerate(cells)
                   if c.cell_type == "markdown" and c.source.startswith("## Key points"))
    found = [i for i, c in enumerate(cells)
             if c.cell_type == "markdown" and c.source.startswith(CHALLENGE)]
    minutes = teaching_minutes(name)
    assert len(found) >= max(1, minutes // 10), (
        f"{len(found)} challenges for {minutes} min of teaching: want one per 10 min")
    for i in found:
        source = cells[i].source
        assert re.search(r"<details><summary>Answer[^<]*</summary>\n\n.+\n\n</details>$",
                         source, re.S), f"cell {i}: the answer must be collapsed in <details>"
        assert i < closing and cells[i + 1].cell_type == "code", (
            f"cell {i}: a challenge sits in the body, right before the cell that answers it")


def test_every_chapter_file_is_in_the_contract():
    """A new chapters/*.ipynb is checked by the contract tests (WRITTEN) as soon as it exists."""
    on_disk = sorted(p.stem for p in CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
    assert on_disk == WRITTEN, f"chapters not in WRITTEN: {sorted(set(on_disk) - set(WRITTEN))}"


def agenda(title: str) -> list[tuple[str, str, int | None]]:
    """(start, block, minutes) rows of the README table that follows the bold ``title``."""
    readme = (Path(CHAPTERS).parent / "README.md").read_text(encoding="utf-8")
    start = readme.find(f"**{title}")
    assert start >= 0, f"README has no '**{title}' agenda"
    rows = []
    for line in readme[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"\d:\d\d", cells[0]):
            rows.append((cells[0], cells[1], int(cells[2]) if cells[2] else None))
    return rows


@pytest.mark.parametrize(("title", "total"), [("A 3-hour workshop", 180), ("In 90 minutes", 90)])
def test_workshop_agendas_add_up_with_breaks(title, total):
    """Each row starts when the previous one ends, the last row ends the day at ``total``
    minutes, and there is at least one break (two in three hours)."""
    rows = agenda(title)
    clock = 0
    for start, block, minutes in rows:
        hours, mins = start.split(":")
        assert int(hours) * 60 + int(mins) == clock, f"{block!r} starts at {start}, not {clock}"
        clock += minutes or 0
    assert clock == total and rows[-1][2] is None, f"the agenda ends after {clock} min"
    breaks = [row for row in rows if row[1] == "break"]
    assert len(breaks) >= total // 90, f"{len(breaks)} breaks in {total} min"


def test_workshop_agenda_gives_each_chapter_its_stated_teaching_time():
    """The 3-hour agenda teaches every core chapter for exactly its Time line's minutes and
    gives no exercise more than the chapter's stated exercise time."""
    rows = agenda("A 3-hour workshop")
    for name in CORE:
        taught = [m for _, block, m in rows if f"(chapters/{name}.ipynb)" in block]
        assert taught == [teaching_minutes(name)], f"{name}: agenda {taught}"
        stated = re.search(r"· (\d+) min exercise", markdown(name)[0])
        for _, block, minutes in rows:
            if block.startswith(f"exercise {name[:2]},"):
                assert stated and minutes <= int(stated[1]), f"{block}: {minutes} min"


CHAPTER_REF = re.compile(r"\bchapters? (\d{2})(?:\s*[-–]\s*(\d{2}))?", re.I)


@pytest.mark.parametrize("name", WRITTEN)
def test_no_markdown_cell_names_a_chapter_that_does_not_exist(name):
    """'chapter NN' and 'chapters NN-MM' only name chapters that are in chapters/."""
    present = {path.name[:2] for path in CHAPTERS.glob("[0-9][0-9]_*.ipynb")}
    missing = set()
    for cell in markdown(name):
        for match in CHAPTER_REF.finditer(cell):
            first, last = int(match[1]), int(match[2] or match[1])
            missing |= {f"{n:02d}" for n in range(first, last + 1)} - present
    assert not missing, f"mentions chapter(s) {sorted(missing)}, which chapters/ does not have"


def test_chapter_00_has_a_before_you_start_box_and_a_glossary():
    """Chapter 00 says what to bring (a 'Before you start' box, before Setup, with links) and
    defines the course's words in a '## Glossary' table."""
    cells = markdown("00_start_here")
    setup = next(i for i, c in enumerate(cells) if c.startswith("## Setup"))
    box = [c for c in cells[:setup] if c.startswith("> **Before you start.**")]
    assert box, "no '> **Before you start.**' box before Setup"
    assert "asyncio" in box[0] and len(re.findall(r"\]\(https://", box[0])) >= 3
    glossary = section(cells, "Glossary")
    terms = re.findall(r"^\| \*\*(.+?)\*\* \|", glossary, re.M)
    for term in ("socket", "channel", "topic", "ref", "join_ref", "push", "broadcast",
                 "heartbeat", "close code"):
        assert term in terms, f"the glossary does not define {term!r}"


@pytest.mark.parametrize("name", CORE[1:])
def test_chapter_links_the_glossary_before_its_first_section(name):
    """Chapters 01-04 link chapter 00's glossary in their opening cells (first uses)."""
    cells = markdown(name)
    first_section = next(i for i, c in enumerate(cells) if re.match(r"## 1\. ", c))
    assert any("(00_start_here.ipynb#Glossary)" in c for c in cells[:first_section + 1]), (
        "no link to 00_start_here.ipynb#Glossary before or in section 1")


# chapter -> the call whose figure the chapter shows (drawn from the package's own data)
DIAGRAMS = {"00_start_here": "pieces()", "03_channel_subscriptions": "draw().figure",
            "04_reconnecting_well": "plot_herds("}


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_listed_diagrams_are_drawn_by_the_package(name):
    """The chapter has a code cell whose last statement draws its listed diagram."""
    code = [c.source for c in load(name).cells if c.cell_type == "code"]
    last_lines = [src.strip().splitlines()[-1] for src in code if src.strip()]
    assert any(DIAGRAMS[name] in line for line in last_lines), (
        f"no cell ends by drawing {DIAGRAMS[name]!r}")
