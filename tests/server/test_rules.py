"""Access rules: allow and deny by each criterion, first match wins, defaults."""

import datetime
import ipaddress

import pytest

from socksify.server._rules import Query, RuleError, evaluate, rule_from_dict

MONDAY_NOON = datetime.datetime(2024, 1, 1, 12, 0)  # 2024-01-01 was a Monday
ip = ipaddress.ip_address


def query(**kw):
    base = dict(client=ip("127.0.0.1"), command="connect", port=80, host=None,
                address=ip("192.0.2.10"), user=None, protocol="socks5")
    base.update(kw)
    return Query(**base)


def decide(rule_tables, q, now=MONDAY_NOON):
    rules = [rule_from_dict(t, f"rule {i}") for i, t in enumerate(rule_tables, 1)]
    return evaluate(rules, q, now)[0]


CASES = [
    # (criterion table, matching query kwargs, non-matching query kwargs)
    ({"from": ["10.0.0.0/8"]}, {"client": ip("10.1.2.3")}, {"client": ip("127.0.0.1")}),
    ({"from": ["::1/128"]}, {"client": ip("::1")}, {"client": ip("127.0.0.1")}),
    ({"users": ["alice"]}, {"user": "alice"}, {"user": "bob"}),
    ({"to": ["*.example.org"]}, {"host": "www.example.org"}, {"host": "example.org"}),
    ({"to": [".example.org"]}, {"host": "example.org"}, {"host": "badexample.org"}),
    ({"to": ["example.org"]}, {"host": "EXAMPLE.org."}, {"host": "www.example.org"}),
    ({"to": ["192.0.2.0/24"]}, {"address": ip("192.0.2.99")}, {"address": ip("198.51.100.1")}),
    ({"to": ["2001:db8::/32"]}, {"address": ip("2001:db8::5")}, {"address": ip("2001:db9::5")}),
    ({"ports": [80, "8000-8999"]}, {"port": 8500}, {"port": 443}),
    ({"commands": ["bind"]}, {"command": "bind"}, {"command": "connect"}),
    ({"commands": "udp"}, {"command": "udp"}, {"command": "bind"}),
    ({"commands": ["resolve"]}, {"command": "resolve"}, {"command": "resolve_ptr"}),
    ({"protocols": ["socks4"]}, {"protocol": "socks4"}, {"protocol": "socks5"}),
]


@pytest.mark.parametrize("action", ["allow", "deny"])
@pytest.mark.parametrize(("criterion", "hit", "miss"), CASES)
def test_each_criterion_allows_and_denies(action, criterion, hit, miss):
    # The rule under test, then a catch-all with the opposite action.
    other = "deny" if action == "allow" else "allow"
    tables = [{"action": action, **criterion}, {"action": other}]
    assert decide(tables, query(**hit)) is (action == "allow")
    assert decide(tables, query(**miss)) is (other == "allow")


def test_first_match_wins():
    tables = [{"action": "deny", "ports": [25]}, {"action": "allow", "ports": [25, 80]}]
    assert decide(tables, query(port=25)) is False
    assert decide(tables, query(port=80)) is True


def test_default_is_allow_without_rules_and_deny_with_rules():
    assert evaluate([], query(), MONDAY_NOON) == (True, None)
    assert decide([{"action": "allow", "ports": [443]}], query(port=80)) is False


def test_name_is_checked_with_each_resolved_address():
    # A host-name allow cannot be used to reach an IP network that an earlier rule denies.
    tables = [
        {"action": "deny", "to": ["10.0.0.0/8"]},
        {"action": "allow", "to": ["*.example.org"]},
    ]
    assert decide(tables, query(host="a.example.org", address=ip("192.0.2.1"))) is True
    assert decide(tables, query(host="a.example.org", address=ip("10.0.0.1"))) is False


def test_ipv4_mapped_address_matches_ipv4_network():
    tables = [{"action": "deny", "to": ["10.0.0.0/8"]}, {"action": "allow"}]
    assert decide(tables, query(address=ip("::ffff:10.1.1.1"))) is False


def test_association_check_ignores_destination_criteria_of_allow_rules():
    # port=None: "could any destination be allowed?" (UDP ASSOCIATE before datagrams).
    tables = [{"action": "deny", "to": ["10.0.0.0/8"]},
              {"action": "allow", "commands": ["udp"], "to": ["192.0.2.0/24"]}]
    assert decide(tables, query(command="udp", port=None, address=None)) is True
    tables = [{"action": "deny", "commands": ["udp"]}, {"action": "allow"}]
    assert decide(tables, query(command="udp", port=None, address=None)) is False


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        ({"days": ["mon-fri"]}, datetime.datetime(2024, 1, 1, 3, 0), True),  # Monday
        ({"days": ["mon-fri"]}, datetime.datetime(2024, 1, 6, 12, 0), False),  # Saturday
        ({"days": ["sat", "sun"]}, datetime.datetime(2024, 1, 7, 12, 0), True),  # Sunday
        ({"days": "fri-mon"}, datetime.datetime(2024, 1, 7, 12, 0), True),  # wraps the week
        ({"hours": "08:00-18:00"}, datetime.datetime(2024, 1, 1, 7, 59), False),
        ({"hours": "08:00-18:00"}, datetime.datetime(2024, 1, 1, 8, 0), True),
        ({"hours": "08:00-18:00"}, datetime.datetime(2024, 1, 1, 18, 0), False),
        ({"hours": ["22:00-02:00"]}, datetime.datetime(2024, 1, 1, 23, 30), True),
        ({"hours": ["22:00-02:00"]}, datetime.datetime(2024, 1, 2, 1, 30), True),
        ({"hours": ["22:00-02:00"]}, datetime.datetime(2024, 1, 2, 12, 0), False),
        # 01:30 on Tuesday belongs to Monday night's window only if Monday is listed.
        ({"days": "mon", "hours": "22:00-02:00"}, datetime.datetime(2024, 1, 2, 1, 30), True),
        ({"days": "tue", "hours": "22:00-02:00"}, datetime.datetime(2024, 1, 2, 1, 30), False),
        ({"hours": ["06:00-07:00", "12:00-13:00"]}, datetime.datetime(2024, 1, 1, 12, 5), True),
        ({"hours": "00:00-24:00"}, datetime.datetime(2024, 1, 1, 23, 59), True),
    ],
)
@pytest.mark.parametrize("action", ["allow", "deny"])
def test_time_windows_with_injected_clock(window, now, expected, action):
    other = "deny" if action == "allow" else "allow"
    tables = [{"action": action, **window}, {"action": other}]
    result = decide(tables, query(), now=now)
    assert result is (action == "allow" if expected else other == "allow")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "action"),
        ({"action": "maybe"}, "action"),
        ({"action": "allow", "colour": 1}, "unknown key"),
        ({"action": "allow", "from": ["not-a-net"]}, "'from'"),
        ({"action": "allow", "ports": ["80-20"]}, "'ports'"),
        ({"action": "allow", "ports": [70000]}, "'ports'"),
        ({"action": "allow", "ports": ["http"]}, "'ports'"),
        ({"action": "allow", "ports": ["\u0668\u0660"]}, "'ports'"),  # Arabic-Indic "80"
        ({"action": "allow", "hours": "\u0660\u0668:00-18:00"}, "'hours'"),
        ({"action": "allow", "commands": ["connect_dir"]}, "'commands'"),
        ({"action": "allow", "protocols": ["socks6"]}, "'protocols'"),
        ({"action": "allow", "days": ["funday"]}, "'days'"),
        ({"action": "allow", "hours": "8-18"}, "'hours'"),
        ({"action": "allow", "hours": "25:00-26:00"}, "'hours'"),
        ({"action": "allow", "to": [""]}, "'to'"),
        ({"action": "allow", "users": [1]}, "'users'"),
    ],
)
def test_bad_rules_name_the_key(table, message):
    with pytest.raises(RuleError, match="rule 7") as info:
        rule_from_dict(table, "rule 7")
    assert message in str(info.value)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "::ffff:0.0.0.0"])
def test_unspecified_destination_is_judged_as_loopback(address):
    # connect() to 0.0.0.0 or :: reaches this host: a loopback deny rule must hold.
    tables = [{"action": "deny", "to": ["127.0.0.0/8", "::1"]}, {"action": "allow"}]
    assert decide(tables, query(address=ip(address))) is False
    assert decide(tables, query(address=ip("192.0.2.1"))) is True
