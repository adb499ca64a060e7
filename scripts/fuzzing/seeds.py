"""Seed corpora for the fuzz targets, built from the shared vectors (``tests/vectors/``).

Seeds are whole conversations where a target reads more than one message (a greeting
followed by an auth request and a request), so mutations start from deep states.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
REGRESSIONS = VECTORS / "regressions"


def _cases(filename: str) -> list[dict]:
    with open(VECTORS / filename, encoding="utf-8") as f:
        return json.load(f)["cases"]


def _pick(cases, *, direction, message, version=None, valid_only=False) -> list[bytes]:
    out = []
    for case in cases:
        if case["direction"] != direction or case["message"] != message:
            continue
        if version is not None and case["version"] != version:
            continue
        if valid_only and "decoded" not in case:
            continue
        out.append(bytes.fromhex(case["hex"]))
    return out


def _message_cases() -> list[dict]:
    return _cases("socks4.json") + _cases("socks5.json") + _cases("udp.json")


def regression_inputs(target: str) -> list[bytes]:
    """Fixed cases of ``tests/vectors/regressions/<target>.json`` (inputs that broke the
    target once). Open ones are left out: they would fail every run until fixed."""
    path = REGRESSIONS / f"{target}.json"
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    return [bytes.fromhex(c["hex"]) for c in cases if c.get("status") != "open"]


def core_server() -> list[bytes]:
    """What a client sends: greeting [+ auth] + request [+ early data]; SOCKS4 requests."""
    cases = _message_cases()
    c2s = "client_to_server"
    greetings = _pick(cases, direction=c2s, message="greeting", version=5)
    auths = _pick(cases, direction=c2s, message="userpass_auth", version=5)
    requests5 = _pick(cases, direction=c2s, message="request", version=5)
    requests4 = _pick(cases, direction=c2s, message="request", version=4)
    seeds = list(greetings) + list(requests4)
    seeds += [r + b"early data" for r in requests4[:4]]
    seeds += [b"\x05\x01\x00" + r for r in requests5]
    seeds += [b"\x05\x01\x02" + a + requests5[0] for a in auths]
    seeds += [g + requests5[i % len(requests5)] for i, g in enumerate(greetings)]
    seeds += [b"\x05\x01\x00" + requests5[0] + b"GET / HTTP/1.0\r\n\r\n"]
    return seeds + regression_inputs("core-server")


def core_client() -> list[bytes]:
    """What a server sends: method selection [+ auth result] + reply [+ second reply]."""
    cases = _message_cases()
    s2c = "server_to_client"
    methods = _pick(cases, direction=s2c, message="method_selected", version=5)
    results = _pick(cases, direction=s2c, message="auth_result", version=5)
    replies5 = _pick(cases, direction=s2c, message="reply", version=5)
    replies4 = _pick(cases, direction=s2c, message="reply", version=4)
    seeds = list(methods) + list(replies4)
    seeds += [b"\x05\x00" + r for r in replies5]
    seeds += [b"\x05\x02" + a + replies5[0] for a in results]
    seeds += [b"\x05\x00" + r + r + b"tunnel bytes" for r in replies5[:4]]
    seeds += [r + r for r in replies4[:3]]
    return seeds + regression_inputs("core-client")


def udp() -> list[bytes]:
    return [bytes.fromhex(c["hex"]) for c in _cases("udp.json")] + regression_inputs("udp")


def native_codec() -> list[bytes]:
    cases = _message_cases()
    seeds = [bytes.fromhex(c["hex"]) for c in cases if c["direction"] == "server_to_client"]
    seeds += udp()
    return seeds + regression_inputs("native-codec")


def proxy_url() -> list[bytes]:
    seeds = []
    for case in _cases("proxy_urls.json"):
        text = case.get("url") or case.get("text") or ""
        if isinstance(text, str) and text:
            seeds.append(text.encode("utf-8", "surrogatepass"))
    seeds += [
        b"socks5h://alice:s%3Acret@[::1]:1080,socks4a://10.0.0.1:9050",
        b"localhost,.example.org,10.0.0.0/8,::1,[fe80::1]",
        b"198.18.0.0/15,fd00:5f::/64",
    ]
    return seeds + regression_inputs("native-url") + regression_inputs("proxy-url")


CONFIG_SNIPPETS = [
    '[server]\nlisten = ["127.0.0.1:0", "[::1]:0"]\nmax_clients = 10\nlog_level = "debug"\n',
    "[timeouts]\nhandshake = 0.5\nconnect = 2\nidle = 0\nbind = 1.5\n",
    '[users]\nalice = "s3cret"\n"b o b" = "scrypt$16384$8$1$c2FsdA==$aGFzaA=="\n',
    '[hosts]\n"only-proxy.test" = "127.0.0.1"\n"dual.test" = ["10.0.0.6", "fd00::6"]\n',
    '[[rules]]\naction = "deny"\nto = ["169.254.0.0/16", "*.example.org", ".x.test"]\n'
    'ports = [80, "8000-8999"]\n\n[[rules]]\naction = "allow"\nfrom = ["127.0.0.0/8"]\n'
    'commands = ["connect", "bind", "udp"]\nprotocols = ["socks4"]\ndays = ["mon-fri"]\n'
    'hours = ["22:00-02:00"]\nusers = ["alice"]\n',
    "a = 1\nb = 'lit'\nc = \"\"\"multi\nline\"\"\"\nd = [1, [2, 3], {x = 1}]\ne.f = true\n",
    "x = 1_000\ny = 0x1f\nz = 1e3\nw = -0.5\nv = \"\\u00e9\\t\"\n[a.b]\n[[c]]\n",
]


def config() -> list[bytes]:
    seeds = [s.encode() for s in CONFIG_SNIPPETS]
    seeds += [b"127.0.0.1:1080", b"[::1]:0", b"localhost"]  # --listen values
    example = ROOT / "examples" / "server.toml"
    if example.exists():
        seeds.append(example.read_bytes())
    return seeds + regression_inputs("config")
