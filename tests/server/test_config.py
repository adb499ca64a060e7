"""ServerConfig from TOML and options: every bad value is a ConfigError naming it."""

import os
import pathlib

import pytest

from socksify.server import ConfigError, ServerConfig, load_config, parse_config_text
from socksify.server._config import parse_listen, parse_user

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "server.toml"


def test_example_config_loads():
    config = load_config(str(EXAMPLE))
    assert config.listen == [("127.0.0.1", 1080), ("::1", 1080)]
    assert config.idle_timeout == 600 and config.bind_timeout == 120
    assert [r.action for r in config.rules] == ["deny", "allow", "allow"]
    assert config.users == {} and config.allow_open_proxy is False


def test_full_config():
    config = parse_config_text(
        """
        [server]
        listen = "127.0.0.1:0"
        max_clients = 3
        log_level = "DEBUG"
        [timeouts]
        handshake = 1.5
        connect = 2
        [users]
        alice = "pw"
        [hosts]
        "only-proxy.test" = "127.0.0.1"
        "both.test" = ["::1", "127.0.0.2"]
        [[rules]]
        action = "allow"
        users = ["alice"]
        """
    )
    assert config.listen == [("127.0.0.1", 0)]
    assert config.max_clients == 3 and config.log_level == "debug"
    assert (config.handshake_timeout, config.connect_timeout) == (1.5, 2.0)
    assert config.users == {"alice": "pw"}
    assert config.hosts == {"only-proxy.test": ["127.0.0.1"], "both.test": ["::1", "127.0.0.2"]}
    assert config.rules[0].users == ("alice",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server\n", "invalid TOML"),
        ("colour = 1\n", "unknown key"),
        ("[server]\nport = 1\n", r"\[server\]: unknown key"),
        ("[server]\nlisten = 5\n", "server.listen"),
        ('[server]\nlisten = ["1.2.3.4"]\n', "open proxy"),
        ('[server]\nlisten = ["::1:80"]\n', "brackets"),
        ('[server]\nlisten = ["127.0.0.1:99999"]\n', "bad port"),
        ("[server]\nmax_clients = 0\n", "max_clients"),
        ('[server]\nmax_clients = "5"\n', "max_clients"),
        ('[server]\nlog_level = "loud"\n', "log_level"),
        ("[timeouts]\nidle = -1\n", "idle"),
        ("[timeouts]\nidle = nan\n", "idle"),
        ("[timeouts]\nconnect = inf\n", "connect"),
        ("[timeouts]\nbind = 1" + "0" * 400 + "\n", "too large"),
        ("[timeouts]\nforever = 1\n", r"\[timeouts\]"),
        ("[users]\nalice = 5\n", "users.alice"),
        ('[users]\nalice = "scrypt$1$2"\n', "alice"),
        ('[hosts]\n"x.test" = "not-an-ip"\n', "hosts.x.test"),
        ('[[rules]]\naction = "allow"\nports = ["x"]\n', "rule 1"),
        ('[[rules]]\naction = "allow"\n[[rules]]\nfrom = "x"\naction = "deny"\n', "rule 2"),
    ],
)
def test_config_errors_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_config_text(text)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "nope.toml"))


def test_open_proxy_needs_users_or_the_flag():
    with pytest.raises(ConfigError, match="--allow-open-proxy"):
        ServerConfig(listen=[("0.0.0.0", 1080)]).check()
    ServerConfig(listen=[("0.0.0.0", 1080)], users={"a": "b"}).check()
    ServerConfig(listen=[("0.0.0.0", 1080)], allow_open_proxy=True).check()
    ServerConfig(listen=[("::1", 1080), ("localhost", 1)]).check()


def test_world_readable_plain_passwords_warn(tmp_path, caplog):
    path = tmp_path / "s.toml"
    path.write_text('[users]\nalice = "pw"\n')
    os.chmod(path, 0o644)
    load_config(str(path))
    assert "plain-text passwords" in caplog.text
    caplog.clear()
    os.chmod(path, 0o600)
    load_config(str(path))
    assert "plain-text" not in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:1081", ("::1", 1081)),
        ("[::1]", ("::1", 1080)),
        ("localhost", ("localhost", 1080)),
    ],
)
def test_parse_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text", [":80", "[::1", "[nope]:1", "h:x", "h:-1", "[::1]x", "h:\u0661\u0662", "h:+80"]
)
def test_parse_listen_errors(text):
    with pytest.raises(ConfigError, match="listen"):
        parse_listen(text)


def test_parse_user_splits_at_first_colon_literally():
    assert parse_user("alice:pa:ss%20") == ("alice", "pa:ss%20")
    assert parse_user("bob:") == ("bob", "")
    for bad in ("nocolon", ":pw", "x" * 256 + ":pw"):
        with pytest.raises(ConfigError, match="--user"):
            parse_user(bad)
