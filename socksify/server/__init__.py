"""socksify-server: the reference SOCKS4/4a/5 server (asyncio).

Python API::

    from socksify.server import Server, ServerConfig, run_in_thread

    async with Server(ServerConfig(listen=[("127.0.0.1", 0)])) as server:
        print(server.addresses)          # [("127.0.0.1", 40123)]
        await server.serve_forever()

    with run_in_thread(config, on_session=records.append) as server:
        ...                              # server.addresses, one record dict per session

The command line is ``socksify-server`` (``socksify/server/__main__.py``).
"""

from ._auth import hash_password
from ._config import ConfigError, ServerConfig, load_config, parse_config_text
from ._rules import Rule, rule_from_dict
from ._server import Server, ThreadedServer, format_record, run_in_thread

__all__ = [
    "ConfigError",
    "Rule",
    "Server",
    "ServerConfig",
    "ThreadedServer",
    "format_record",
    "hash_password",
    "load_config",
    "parse_config_text",
    "rule_from_dict",
    "run_in_thread",
]
