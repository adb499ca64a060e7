"""``[server] relay = "threads" | "portable"`` and its deprecated alias ``splice``."""

import asyncio
import logging
import os
import pathlib
import select
import signal
import time

import pytest

from socksify.server import ConfigError, Server, ServerConfig, load_config, parse_config_text
from socksify.server._threaded_relay import THREADED_RELAY_AVAILABLE

from .test_cli import READY, start, stop
from .test_workers import wait_children

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "server.toml"


def deprecation_warnings(caplog):
    return [r for r in caplog.records
            if r.levelno == logging.WARNING and "server.splice" in r.getMessage()]


def test_default_is_threads():
    assert ServerConfig().relay == "threads"
    assert parse_config_text("[server]\n").relay == "threads"


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_relay_key_is_parsed_without_warning(relay, caplog):
    config = parse_config_text(f'[server]\nrelay = "{relay}"\n')
    assert config.relay == relay
    assert deprecation_warnings(caplog) == []


@pytest.mark.parametrize(("splice", "relay"), [("true", "threads"), ("false", "portable")])
def test_splice_alias_maps_to_relay_with_one_warning(splice, relay, caplog):
    config = parse_config_text(f"[server]\nsplice = {splice}\n")
    assert config.relay == relay
    [warning] = deprecation_warnings(caplog)
    assert "deprecated" in warning.getMessage()
    assert f'relay = "{relay}"' in warning.getMessage()


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_relay_and_splice_both_set_is_an_error_naming_both(relay):
    with pytest.raises(ConfigError) as info:
        parse_config_text(f'[server]\nrelay = "{relay}"\nsplice = true\n')
    assert "server.relay" in str(info.value) and "server.splice" in str(info.value)


@pytest.mark.parametrize("value", ['"fast"', '"Threads"', '"splice"', '""', "1", "true",
                                   '["threads"]'])
def test_bad_relay_value_is_an_error_naming_the_key_and_the_choices(value):
    with pytest.raises(ConfigError) as info:
        parse_config_text(f"[server]\nrelay = {value}\n")
    assert 'server.relay must be "threads" or "portable"' in str(info.value)


def test_bad_splice_value_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match="server.splice must be true or false"):
        parse_config_text('[server]\nsplice = "yes"\n')


def test_python_api_checks_the_relay_value():
    with pytest.raises(ConfigError, match='relay must be "threads" or "portable"'):
        ServerConfig(relay="splice").check()


def test_example_config_uses_the_relay_key(caplog):
    assert load_config(str(EXAMPLE)).relay == "threads"
    assert deprecation_warnings(caplog) == []


@pytest.mark.parametrize("relay", ["threads", "portable"])
def test_relay_key_picks_the_servers_accept_path(relay):
    """"threads" (on Linux) accepts on the threaded relay's own reader callback; "portable"
    through asyncio servers, whose transports go to the portable relay."""

    async def paths():
        config = ServerConfig(listen=[("127.0.0.1", 0)], relay=relay)
        async with Server(config) as server:
            return bool(server._listeners), bool(server._servers)

    threaded = relay == "threads" and THREADED_RELAY_AVAILABLE
    assert asyncio.run(paths()) == (threaded, not threaded)


def stderr_until_ready(proc, timeout=60):
    """Every stderr line up to and including the (first) ready line (bounded)."""
    deadline, buf = time.monotonic() + timeout, b""
    while True:
        lines = buf.split(b"\n")
        if any(READY.match(line) for line in lines[:-1]):
            return lines[:-1]
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"no ready line; stderr so far: {buf!r}")
        ready, _, _ = select.select([proc.stderr], [], [], left)
        if ready:
            buf += os.read(proc.stderr.fileno(), 4096)


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_warns_once_at_start_up_for_the_old_key(tmp_path, workers):
    path = tmp_path / "server.toml"
    path.write_text(f"[server]\nsplice = false\nworkers = {workers}\n")
    proc = start("--listen", "127.0.0.1:0", "--config", str(path))
    try:
        lines = stderr_until_ready(proc)
        if workers > 1:  # (a SIGTERM while workers start is not what this test is about)
            wait_children(proc.pid, workers)
    finally:
        assert stop(proc, signal.SIGTERM) == 0
    warnings = [line for line in lines if b"server.splice" in line]
    assert warnings == [b'socksify-server: server.splice is deprecated: write relay = '
                        b'"portable" in [server] instead']
