"""The main job end to end: the bundled server, a local web page, and real traffic through it.

Run by ``scripts/demo`` inside a virtual environment where socksify is installed. Everything
stays on loopback. Each step prints one line; any failure exits non-zero.
"""

import http.server
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading

PAGE = b"<html><body>socksify demo page</body></html>\n"
#: a name only the bundled server can resolve: proves remote DNS (socks5h, socks4a)
DEMO_NAME = "demo.socksify.test"
TIMEOUT = 30


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def start_page_server() -> int:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def start_socks_server(config_path: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        ["socksify-server", "--listen", "127.0.0.1:0", "--config", config_path],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    match = re.fullmatch(r"socksify-server listening on 127\.0\.0\.1:(\d+)\n", line)
    if not match:
        proc.kill()
        sys.exit(f"demo: socksify-server did not start: {line!r}")
    # Keep draining its log so the server never blocks on a full pipe.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, int(match.group(1))


def check(label: str, argv: list[str], cwd: str) -> None:
    # cwd outside the checkout: `python -m socksify` must import the installed package.
    result = subprocess.run(argv, capture_output=True, timeout=TIMEOUT, cwd=cwd)
    if result.returncode != 0 or result.stdout != PAGE:
        sys.stderr.write(result.stderr.decode(errors="replace"))
        sys.exit(f"demo: FAILED {label}: exit {result.returncode}, got {result.stdout[:80]!r}")
    print(f"demo: ok  {label}")


def main() -> None:
    page_port = start_page_server()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "server.toml")
        with open(config, "w") as f:
            f.write(f'[hosts]\n"{DEMO_NAME}" = "127.0.0.1"\n')
        server, socks_port = start_socks_server(config)
        try:
            proxy = f"socks5h://127.0.0.1:{socks_port}"
            url = f"http://{DEMO_NAME}:{page_port}/"
            print(f"demo: socksify-server on 127.0.0.1:{socks_port}, page at {url}")
            check("curl --socks5-hostname", ["curl", "-sS", "--socks5-hostname",
                                             f"127.0.0.1:{socks_port}", url], tmp)
            script = os.path.join(tmp, "fetch.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent(f"""\
                    import sys, urllib.request
                    sys.stdout.buffer.write(urllib.request.urlopen({url!r}, timeout=10).read())
                    """))
            check("python -m socksify (Python shim)",
                  [sys.executable, "-m", "socksify", "--proxy", proxy, script], tmp)
            check("socksify-run curl (native shim)",
                  ["socksify-run", "--proxy", proxy, "curl", "-sS", url], tmp)
        finally:
            server.terminate()
            status = server.wait(timeout=TIMEOUT)
        if status != 0:
            sys.exit(f"demo: socksify-server exited with {status} on SIGTERM")
        print("demo: ok  socksify-server stopped cleanly")


if __name__ == "__main__":
    main()
