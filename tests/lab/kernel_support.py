"""Drive a real ipykernel 7 like a frontend would: execute cells, click widgets, read iopub."""

from __future__ import annotations

import asyncio
import os
import queue
import sys
from collections.abc import Callable
from typing import Any

from jupyter_client.manager import AsyncKernelManager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CellError(AssertionError):
    """A cell raised inside the kernel."""


class Kernel:
    """One kernel process plus its client; every iopub message is kept in ``self.iopub``."""

    def __init__(self) -> None:
        self.km = AsyncKernelManager(kernel_name="python3")
        self.kc: Any = None
        self.stopped = False
        self.iopub: list[dict[str, Any]] = []

    async def start(self, timeout: float = 90) -> Kernel:  # noqa: ASYNC109
        """Start the kernel with the course on its path and fast timers."""
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "COURSE_FAST": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        await self.km.start_kernel(cwd=ROOT, env=env, extra_arguments=["--HistoryManager."
                                                                      "enabled=False"])
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=timeout)
        return self

    async def next_iopub(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        """The next iopub message (also recorded)."""
        try:
            msg = await self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no iopub message within {timeout} s") from None
        self.iopub.append(msg)
        return msg

    async def wait_iopub(self, predicate: Callable[[dict[str, Any]], bool],
                         timeout: float = 10) -> dict[str, Any]:  # noqa: ASYNC109
        """Read iopub until a message satisfies ``predicate``."""
        async def matching() -> dict[str, Any]:
            while True:
                msg = await self.next_iopub(timeout)
                if predicate(msg):
                    return msg

        async with asyncio.timeout(timeout):
            return await matching()

    async def execute(self, code: str, timeout: float = 60) -> str:  # noqa: ASYNC109
        """Run one cell; returns its stdout; raises CellError if the cell raised."""
        msg_id = self.kc.execute(code)
        out: list[str] = []
        error: dict[str, Any] | None = None

        def done(msg: dict[str, Any]) -> bool:
            nonlocal error
            if msg["parent_header"].get("msg_id") != msg_id:
                return False
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                error = content
            return kind == "status" and content["execution_state"] == "idle"

        await self.wait_iopub(done, timeout)
        if error is not None:
            raise CellError(f"{error['ename']}: {error['evalue']}\n"
                            + "\n".join(error["traceback"]))
        return "".join(out)

    def click(self, model_id: str) -> str:
        """Send what a browser sends when a Button is clicked; returns the message id."""
        content = {"comm_id": model_id,
                   "data": {"method": "custom", "content": {"event": "click"}}}
        msg = self.kc.session.msg("comm_msg", content)
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    async def shutdown(self) -> None:
        """Ask the kernel to exit (atexit hooks run), then stop the client channels; idempotent."""
        if self.stopped:
            return
        self.stopped = True
        try:
            await self.km.shutdown_kernel(now=False)
        finally:
            if self.kc is not None:
                self.kc.stop_channels()


def widget_update(msg: dict[str, Any], model_id: str) -> dict[str, Any] | None:
    """The new state if ``msg`` is an ipywidgets update of ``model_id``, else None."""
    if msg["msg_type"] != "comm_msg" or msg["content"].get("comm_id") != model_id:
        return None
    data = msg["content"].get("data", {})
    return data.get("state") if data.get("method") == "update" else None


def python() -> str:
    """The interpreter the kernels run (the kernelspec's python3 is this one)."""
    return sys.executable
