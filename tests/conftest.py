"""Shared test set-up.

Fixtures live in ``tests/support/`` (one module per area) and are registered here, so every
test directory sees the same ones:

- ``support.targets``: plain servers on loopback that proxied traffic is sent to.
- ``support.socks_server``: the reference server, started in-process on port 0.
- ``support.peer_proxies``: proxies nobody here wrote (danted, microsocks).
- ``support.cprogs``: ``build_c``, the tests' small C programs built once per session.
"""

import os

pytest_plugins = [
    "support.targets",
    "support.socks_server",
    "support.peer_proxies",
    "support.cprogs",
]


# --- CI guard: end-to-end tests must really run ---------------------------------------------
# Under SOCKSIFY_REQUIRE_PEERS=1 (set by .ci/run) a skipped end-to-end test fails the run, and
# so does a run that collected end-to-end tests but executed none of them.

_E2E = {"ran": 0, "skipped": []}


def pytest_runtest_logreport(report):
    if "e2e" not in report.keywords:
        return
    if hasattr(report, "wasxfail"):  # an expected failure is reported as skipped: not a skip
        return
    if report.when == "call" and not report.skipped:
        _E2E["ran"] += 1
    elif report.skipped:
        _E2E["skipped"].append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("SOCKSIFY_REQUIRE_PEERS") != "1" or exitstatus not in (0,):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if _E2E["skipped"]:
        if reporter:
            reporter.write_line(
                f"FAILED: {len(_E2E['skipped'])} end-to-end tests were skipped under "
                "SOCKSIFY_REQUIRE_PEERS=1: " + ", ".join(_E2E["skipped"][:10]), red=True
            )
        session.exitstatus = 1
    elif _E2E["ran"] == 0 and not session.config.getoption("markexpr", ""):
        if reporter:
            reporter.write_line("FAILED: no end-to-end test ran", red=True)
        session.exitstatus = 1
