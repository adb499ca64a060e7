"""The TOML-subset reader (used on Python 3.10) gives what tomllib gives.

On Python 3.10, where the subset reader is what the server runs, the reference is tomli
(the package tomllib was taken from; a tox dependency there), so these cases run on every
supported version.
"""

import pathlib
import sys

import pytest

from socksify.server import _toml

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli", reason="tomli is the 3.10 reference (tox installs it)")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "server.toml"

VALID = [
    "",
    "# only a comment\n",
    'a = "x"\nb = \'lit\\n\'\nc = 1\nd = -2_000\ne = 1.5\nf = true\ng = false\n',
    'h = 0x1F\ni = 0o17\nj = 0b101\nk = 1e3\nl = -2.5E-2\nm = inf\nn = -inf\n',
    's = "esc \\" \\\\ \\t \\n \\u00e9 \\U0001F600"\n',
    'ml = """\nline1\nline2 \\\n    joined"""\n',
    "mll = '''\nraw \\n text'''\n",
    'q = """a""b"""""\n',
    "arr = [1, 2,\n  3, # comment\n]\nnested = [[1, 2], ['a']]\nempty = []\n",
    '[server]\nlisten = ["127.0.0.1:0", "[::1]:0"]\n\n[timeouts]\nidle = 5\n',
    '[a.b]\nx = 1\n[a.c]\ny = 2\n',
    '[[rules]]\naction = "allow"\n[[rules]]\naction = "deny"\nports = [80, "1-2"]\n',
    '"quoted key" = 1\n\'lit key\' = 2\ndotted.key = 3\n"a.b" = 4\n',
    'inline = { a = 1, b = "two", c = [3] }\n',
    '[hosts]\n"only-proxy.test" = "127.0.0.1"\n"x.test" = ["::1", "127.0.0.2"]\n',
    '[[a]]\nx = 1\n[a.sub]\ny = 2\n[[a]]\nx = 3\n',
    "x = 1 # trailing comment\r\ny = 2\r\n",
]

INVALID = [
    "a = \n",
    "a = 1\na = 2\n",
    "[t]\n[t]\n",
    'a = "unterminated\n',
    "a = [1, 2\n",
    "a = 1 b = 2\n",
    "= 1\n",
    'a = "\\q"\n',
    "a = 01\n",
    "a = 1__0\n",
    "a = { b = 1\n",
    "[a\n",
    "a = 1\n[a]\n",
    "a.b = 1\n[a]\nc = 2\n[a]\n",
    "x = tru\n",
    "a = 'no\nnewline'\n",
    "# bare CR at the end\r",
    "# bare CR \r in a comment\n",
]


@pytest.mark.parametrize("text", VALID)
def test_subset_reader_matches_tomllib(text):
    assert _toml.loads(text) == tomllib.loads(text)


@pytest.mark.parametrize("text", INVALID)
def test_subset_reader_rejects_what_tomllib_rejects(text):
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)
    with pytest.raises(_toml.TOMLDecodeError, match="line"):
        _toml.loads(text)


def test_example_config_reads_the_same():
    text = EXAMPLE.read_text()
    parsed = _toml.loads(text)
    assert parsed["server"]["listen"] == ["127.0.0.1:1080", "[::1]:1080"]
    assert len(parsed["rules"]) == 3
    assert parsed == tomllib.loads(text)


def test_dates_are_outside_the_subset():
    with pytest.raises(_toml.TOMLDecodeError, match="dates"):
        _toml.loads("when = 1979-05-27\n")


def test_nan_is_a_float():
    value = _toml.loads("x = nan\n")["x"]
    assert value != value
