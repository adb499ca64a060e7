"""csrc/errmap.c against tests/vectors/errno_map.json (SPEC.md's reply -> errno table)."""

import errno
import json
import pathlib

import pytest

from socksify import errors

MAP = json.loads(
    (pathlib.Path(__file__).resolve().parents[1] / "vectors" / "errno_map.json").read_text()
)


@pytest.mark.parametrize("version", [5, 4])
def test_reply_codes(native, version):
    _, lib = native
    table = MAP[f"socks{version}"]
    assert table, "empty table"
    for code, name in table.items():
        assert lib.sfy_errno_for_reply(version, int(code)) == getattr(errno, name), code


@pytest.mark.parametrize("version, code", [(5, 9), (5, 0xF4), (5, 0xFF), (4, 94)])
def test_unknown_replies(native, version, code):
    _, lib = native
    assert lib.sfy_errno_for_reply(version, code) == getattr(errno, MAP["unknown_reply"])


def test_python_side_agrees():
    """errors.py is the reference the C table mirrors; both follow the same vectors."""
    for table, version in ((errors.REPLY5_ERRNO, "socks5"), (errors.REPLY4_ERRNO, "socks4")):
        assert {str(k): v for k, v in table.items()} == {
            k: getattr(errno, name) for k, name in MAP[version].items()}
