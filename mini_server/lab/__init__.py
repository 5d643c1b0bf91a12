"""The lab kit: servers you can kill, a network you can break, live panels and timelines.

``servers`` (in-kernel or OS-process servers), ``chaos`` (a fault-injecting proxy),
``panels`` (ipywidgets), ``timeline`` (matplotlib), ``timing`` (teaching timers, fast mode),
``blocking`` (sync conveniences), ``stream`` (numbered messages: sent vs received),
``valkey`` (an embedded Valkey for a cluster's PubSub).  Names are imported lazily, so the
OS-process server (``python -m mini_server.lab.process_server``) starts
without loading widgets or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "start_server": "servers", "start_process_server": "servers", "stop_all": "servers",
    "running_servers": "servers", "KernelServer": "servers", "ProcessServer": "servers",
    "ChaosProxy": "chaos", "start_proxy": "chaos", "ConnectionPanel": "panels",
    "Timeline": "timeline", "timers": "timing", "run": "blocking",
    "NumberedStream": "stream", "Receiver": "stream", "Outages": "stream",
    "EmbeddedValkey": "valkey", "start_valkey": "valkey", "stop_all_valkeys": "valkey",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mini_server.lab' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mini_server.lab.{module}"), name)
