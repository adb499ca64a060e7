"""Shared test set-up.

Fixtures live in ``tests/support/`` (one module per area) and are registered here, so every
test directory sees the same ones:

- ``support.targets``: plain servers on loopback that proxied traffic is sent to.
- ``support.socks_server``: the reference server, started in-process on port 0.
- ``support.peer_proxies``: proxies nobody here wrote (danted, microsocks).
"""

pytest_plugins = [
    "support.targets",
    "support.socks_server",
    "support.peer_proxies",
]
