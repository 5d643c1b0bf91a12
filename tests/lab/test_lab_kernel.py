"""The panel in a real kernel: frontend-style clicks, background progress while idle."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from kernel_support import Kernel, widget_update
from lab_support import pid_gone

from mini_server.testing import wait_until

NOTEBOOK = os.path.join(os.path.dirname(__file__), "notebooks", "panel_click.ipynb")


@pytest.fixture
async def kernel():
    k = await Kernel().start()
    yield k
    await k.shutdown()


def _code_cells():
    return [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
            if c.cell_type == "code"]


@pytest.mark.timeout(180)
async def test_clicks_run_while_the_kernel_is_idle(kernel):
    """A comm click on Kill, then Restart, updates the panel with no cell executing."""
    setup, check, cleanup = _code_cells()
    ids = json.loads((await kernel.execute(setup)).strip().splitlines()[-1])
    pid = int((await kernel.execute("import os; print(os.getpid())")).strip())

    def counts_become(text):
        return lambda msg: text in ((widget_update(msg, ids["counts"]) or {}).get("value", ""))

    click = kernel.click(ids["kill"])
    await kernel.wait_iopub(lambda m: m["parent_header"].get("msg_id") == click
                            and m["msg_type"] == "status"
                            and m["content"]["execution_state"] == "idle", timeout=10)
    # The kernel is idle now: only background tasks can produce this update.
    await kernel.wait_iopub(counts_become("0 sockets, 0 channels"), timeout=5)

    kernel.click(ids["restart"])
    await kernel.wait_iopub(counts_become("1 socket, 3 channels"), timeout=10)

    state = json.loads((await kernel.execute(check)).strip())
    assert (state["sockets"], state["channels"]) == (1, 3)
    assert state["errors"] == []
    assert any("server: kill" in line for line in state["log"])
    assert any("server: graceful restart" in line for line in state["log"])
    assert (await kernel.execute(cleanup)).strip() == "clean"

    await kernel.shutdown()
    await wait_until(lambda: pid_gone(pid), timeout=10)
