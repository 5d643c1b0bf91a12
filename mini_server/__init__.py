"""mini_server: the Channels Deep Dive course package.

``protocol`` is the pure wire format; ``server`` is a small Phoenix-compatible endpoint;
``client`` is a Python client with phoenix.js semantics; ``lab`` holds what notebooks use
(servers you can kill, a network you can break, live panels).
"""

__version__ = "0.1.0"
