"""Driving one notebook in a real JupyterLab page: open, run, wait, read (issue 11).

Theory of operation
-------------------
A learner clicks menus and buttons and reads what is rendered, so the tests do the same: the
Run menu runs cells and the panel's buttons are clicked with the mouse.  Two things are read
from the notebook *model* (the app is exposed in the browser): each cell's execution count and
outputs with their ``output_type`` (an ``error`` and a ``stream`` to stderr look alike in the
DOM), and the kernel's status.  Everything a learner sees (widgets, panel text) is read from
the DOM.  Every wait has a bound and fails with what the page showed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importable without playwright, so a missing one skips or fails cleanly
    from playwright.sync_api import Locator, Page

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # git-ignored: failure screenshots
RUN_TIMEOUT = 120.0  # seconds for one chapter's Run All: a hang fails, it never blocks
OPEN_TIMEOUT = 60.0  # seconds for a notebook to open with its kernel idle
WIDGET_TIMEOUT = 15.0  # seconds for every widget output to show its view (or its error)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook on screen
STDERR_MIME = "application/vnd.jupyter.stderr"
# What a widget looks like when the browser could not render it: its Python repr as text.
WIDGET_REPR = re.compile(
    r"\b(?:HBox|VBox|Box|HTML|Label|Button|IntSlider|FloatText|"
    r"BoundedFloatText|Output)\((?:\)|children=|value=|description=|layout=)"
)

# The notebook as the model holds it: kernel status, and per cell its type, execution count,
# whether it is running or queued, and its outputs.
READ_NOTEBOOK = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
  const model = panel.content.model, cells = [];
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i), json = cell.toJSON();
    cells.push({type: json.cell_type, count: json.execution_count ?? null,
                state: cell.executionState ?? null, outputs: json.outputs ?? []});
  }
  return {status: panel.sessionContext.kernelDisplayStatus, cells};
}"""


@dataclass
class Cell:
    index: int  # position in the notebook, markdown cells included
    type: str
    count: int | None
    state: str | None
    outputs: list[dict[str, Any]] = field(default_factory=list)


def read(page: Page) -> tuple[str | None, list[Cell]]:
    """Kernel status and the cells, from the notebook model."""
    found = page.evaluate(READ_NOTEBOOK)
    if found is None:
        return None, []
    cells = [
        Cell(i, c["type"], c["count"], c["state"], c["outputs"])
        for i, c in enumerate(found["cells"])
    ]
    return found["status"], cells


def code_cells(page: Page) -> list[Cell]:
    return [cell for cell in read(page)[1] if cell.type == "code"]


def wait_until(page: Page, done, what: str, timeout: float) -> None:
    """Re-check ``done()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            status, cells = read(page)
            summary = [(c.index, c.count, c.state) for c in cells if c.type == "code"]
            raise AssertionError(
                f"{what}: not within {timeout:g} s (kernel {status!r}; "
                f"code cells (index, count, state): {summary})"
            )
        page.wait_for_timeout(200)  # polling the page: the lab gives no event we could await


def open_notebook(page: Page, url: str) -> None:
    """Open a notebook and wait until its kernel is idle."""
    page.goto(url)
    page.locator(NOTEBOOK).wait_for(state="visible", timeout=OPEN_TIMEOUT * 1000)
    wait_until(
        page, lambda: read(page)[0] == "idle", "the kernel did not become idle", OPEN_TIMEOUT
    )
    ran = [c.index for c in code_cells(page) if c.count is not None]
    # Waiting for "every cell has a count" is only meaningful from a notebook without counts.
    assert not ran, f"the notebook opened with execution counts in cells {ran}"


def run_menu(page: Page, item: str) -> None:
    """Click Run in the menu bar, then the item labelled ``item``."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    label = page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$"))
    label.click()


def settled(page: Page, below: int | None = None) -> bool:
    """The kernel is idle, no cell runs or waits, and every code cell (above index ``below``)
    has run, or one failed: the lab then skips the rest, which the assertions report.  The
    chapters are opened with no execution counts, so a pause between two cells is not taken
    for the end."""
    status, cells = read(page)
    code = [c for c in cells if c.type == "code" and (below is None or c.index < below)]
    failed = any(out.get("output_type") == "error" for c in code for out in c.outputs)
    return (
        status == "idle"
        and not any(c.state == "running" for c in code)
        and (failed or all(c.count is not None for c in code))
    )


def run_all(page: Page) -> None:
    """Run > Run All Cells, then wait (bounded) until everything that will run has run."""
    run_menu(page, "Run All Cells")
    wait_until(page, lambda: settled(page), "Run All did not finish", RUN_TIMEOUT)


def run_all_above(page: Page, index: int) -> None:
    """Select the cell at ``index`` and run every cell above it (Run > Run All Above)."""
    select(page, index)
    run_menu(page, "Run All Above Selected Cell")
    wait_until(
        page, lambda: settled(page, index), f"the cells above {index} did not finish", RUN_TIMEOUT
    )


def run_cell(page: Page, index: int) -> None:
    """Select the code cell at ``index`` and run it (Run > Run Selected Cell)."""
    before = next(c.count for c in code_cells(page) if c.index == index)
    select(page, index)
    run_menu(page, "Run Selected Cell")

    def ran() -> bool:
        cell = next(c for c in code_cells(page) if c.index == index)
        return cell.state != "running" and cell.count not in (None, before)

    wait_until(page, ran, f"cell {index} did not finish", RUN_TIMEOUT)


def cell(page: Page, index: int) -> Locator:
    return page.locator(f"{NOTEBOOK} .jp-Cell").nth(index)


def select(page: Page, index: int) -> None:
    """Make the cell at ``index`` the active one by clicking its prompt area."""
    target = cell(page, index)
    target.scroll_into_view_if_needed()
    target.locator(".jp-InputPrompt").first.click()
    target.and_(page.locator(".jp-mod-active")).wait_for(state="attached")


def problems(page: Page) -> list[str]:
    """Everything a clean Run All must not show, one line each (empty: all is well)."""
    found = []
    _status, cells = read(page)
    for c in cells:
        if c.type != "code":
            continue
        if c.count is None:
            found.append(f"cell {c.index} did not run (no execution count)")
        for out in c.outputs:
            if out.get("output_type") == "error":
                found.append(
                    f"cell {c.index} error output: {out.get('ename')}: {out.get('evalue')}"
                )
            elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                first = (out.get("text") or "").strip().splitlines()[:1]
                found.append(f"cell {c.index} stderr output: {first[0] if first else ''!r}")
    shown_stderr = page.locator(f'{NOTEBOOK} .jp-OutputArea-output[data-mime-type="{STDERR_MIME}"]')
    if shown_stderr.count():
        found.append(
            f"{shown_stderr.count()} output(s) rendered as {STDERR_MIME} (stderr or a traceback)"
        )
    widgets = sum(WIDGET_MIME in out.get("data", {}) for c in cells for out in c.outputs)
    found.extend(widget_problems(page, widgets))
    return found


def widget_problems(page: Page, expected: int) -> list[str]:
    """Widgets that did not render: fewer rendered widgets than the ``expected`` widget outputs
    of the model, 'Error displaying widget', or a widget's text repr."""
    outputs = page.locator(f"{NOTEBOOK} .jp-OutputArea-output")
    rendered = outputs.filter(has=page.locator(":scope > .jupyter-widgets"))
    broken = outputs.filter(has_text="Error displaying widget")
    # A view renders (or reports its error) a moment after its output arrives: wait for each.
    deadline = time.monotonic() + WIDGET_TIMEOUT
    while rendered.count() + broken.count() < expected and time.monotonic() < deadline:
        page.wait_for_timeout(200)  # polling the page: the lab gives no event we could await
    found = []
    if rendered.count() != expected:
        found.append(
            f"{expected} widget output(s) in the notebook, {rendered.count()} rendered as widgets"
        )
    for i, text in enumerate(outputs.all_inner_texts()):
        if "Error displaying widget" in text:
            found.append(f"output {i}: {text.strip()!r}")
        match = WIDGET_REPR.search(text)
        if match:
            found.append(f"output {i}: a widget shown as text: {match[0]!r}")
    return found
