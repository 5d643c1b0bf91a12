"""Start ``python -m mini_server`` (the CLI contract) for a replay, and always stop it."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STARTUP_LIMIT = 20.0  # seconds; a loaded machine imports slowly


@asynccontextmanager
async def cli_server(url: str | None = None, *args: str) -> AsyncIterator[str]:
    """Yield ``url`` when given, else the URL of a fresh CLI server on a free port."""
    if url is not None:
        yield url
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile() as log:  # the server's log, shown when startup fails
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mini_server", "--host", "127.0.0.1", "--port", "0",
            "--log-level", "WARNING", *args, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=log)
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(STARTUP_LIMIT):
                line = (await proc.stdout.readline()).decode()
            match = re.search(r"ws://127\.0\.0\.1:\d+", line)
            if match is None:
                log.seek(0)
                raise RuntimeError(f"no URL from mini_server: {line!r} {log.read()[-2000:]!r}")
            yield match.group(0)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    async with asyncio.timeout(5):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
