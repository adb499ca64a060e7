"""Faults after the handshake, through both shims and the reference server.

- The proxy is killed (SIGKILL) in the middle of a download: the program gets an error,
  never a hang and never a truncated body reported as complete.
- The target resets the connection: the reset reaches the program (ECONNRESET), after the
  bytes sent before it.
- Half-close: shutdown(SHUT_WR) passes through the shim and the server; the echo comes back
  whole and the program then sees EOF.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import pytest
from support.peers import require_peer

from ._servers import ResettingTarget, ServerProcess, StallingHttpTarget

pytestmark = pytest.mark.e2e

CLIENT = str(pathlib.Path(__file__).with_name("stream_client.py"))
SHIMS = ["python", "native"]
_SCRUB = ("SOCKSIFY_", "ALL_PROXY", "all_proxy", "LD_PRELOAD")


def _env():
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}


def shim_command(shim: str, proxy: str, *args: str) -> list[str]:
    """The client under the Python shim (python -m socksify) or the native one (socksify-run)."""
    if shim == "python":
        return [sys.executable, "-m", "socksify", "--proxy", proxy, CLIENT, *args]
    return [sys.executable, "-m", "socksify.run", "--proxy", proxy, "--",
            sys.executable, CLIENT, *args]


def run_client(shim: str, proxy: str, *args: str) -> str:
    result = subprocess.run(
        shim_command(shim, proxy, *args), capture_output=True, text=True, timeout=60,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(params=["threads", "portable"])
def relay_toml(request):
    """TOML selecting the server's relay: the Linux threaded path or the portable one."""
    return f'[server]\nrelay = "{request.param}"\n'


@pytest.mark.parametrize("shim", SHIMS)
def test_half_close_passes_through(shim, socks_server, tcp_echo_server, relay_toml):
    srv = socks_server(config=relay_toml)
    host, port = tcp_echo_server
    size = 300_000  # more than the socket buffers: the echo flows while we still send
    assert run_client(shim, srv.url("socks5"), "halfclose", host, str(port), str(size)) == (
        f"echoed {size} intact"
    )
    record = srv.wait_records(1)[0]
    assert (record["bytes_up"], record["bytes_down"]) == (size, size)


@pytest.mark.parametrize("shim", SHIMS)
def test_target_reset_reaches_the_client(shim, socks_server, relay_toml):
    srv = socks_server(config=relay_toml)
    target = ResettingTarget()
    try:
        seen = run_client(shim, srv.url("socks5"), "reset", "127.0.0.1", str(target.port))
    finally:
        target.close()
    assert seen == "b'hello\\n' then reset"
    assert target.resets == 1


@pytest.mark.parametrize("shim", SHIMS)
def test_proxy_killed_mid_download_is_an_error(shim):
    """SIGKILL the proxy once the program has part of the body: an error, promptly."""
    server = ServerProcess()
    target = StallingHttpTarget()
    try:
        proc = subprocess.Popen(
            shim_command(shim, server.url(), "http", target.url()),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        # The target having sent is not the program having received: wait for the program
        # to say so (bounded: its own timeouts end it with another line).
        started = proc.stdout.readline()
        if started != "receiving\n":
            proc.kill()
            pytest.fail(f"the download never started: {started!r} {proc.communicate(timeout=60)}")
        server.kill()
        target.release()
        out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
        target.close()
    assert proc.returncode == 0, err
    assert out.startswith("error "), out  # not "complete ...", not "HANG ..."


def test_curl_proxy_killed_mid_download(tmp_path):
    """The same with curl under socksify-run: a transfer error exit status, not 0 or 28."""
    curl = require_peer("curl")
    server = ServerProcess()
    target = StallingHttpTarget()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "socksify.run", "--proxy", server.url(), "--", curl,
             "-sS", "--max-time", "30", "-o", str(tmp_path / "body"), target.url()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        assert target.first_part_sent.wait(20), "the download never started"
        # The target having sent is not curl having received: wait until curl has written
        # part of the body, so the kill lands mid-transfer and not before the headers.
        body = tmp_path / "body"
        deadline = time.monotonic() + 20
        while not (body.exists() and body.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert body.exists() and body.stat().st_size, "curl never received the first part"
        server.kill()
        target.release()
        _out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
        target.close()
    # 18 partial file / 56 receive failure; never 0 (success) nor 28 (timed out: a hang)
    assert proc.returncode in (18, 56), (proc.returncode, err)
