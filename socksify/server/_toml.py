"""A small TOML-subset reader, used only where :mod:`tomllib` is missing (Python 3.10).

Rules of this module:

- It reads the subset of TOML 1.0 that a server config needs, and produces the same
  ``dict`` that ``tomllib.loads`` gives for it (tests run both on the same inputs):
  comments, ``[table]`` and ``[[array.of.tables]]`` headers (dotted, quoted parts allowed),
  ``key = value`` with bare, quoted and dotted keys, basic strings (with the usual escapes),
  literal strings, multi-line basic and literal strings, integers (decimal, ``0x``/``0o``/``0b``,
  ``_`` separators), floats (including ``inf``/``nan``), booleans, arrays (multi-line, with
  comments and a trailing comma) and inline tables.
- Dates and times are not supported: they raise :class:`TOMLDecodeError`, as does
  anything else outside the subset, and anything TOML itself forbids that the subset can
  see (a key defined twice, a table defined twice).
- Errors name the line number, like tomllib's.
"""

from __future__ import annotations

import re
import string
from typing import Any

__all__ = ["TOMLDecodeError", "loads"]


class TOMLDecodeError(ValueError):
    """The document is not valid TOML (or uses a feature outside the subset)."""


_BARE_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
_INT_RE = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)")
_PREFIXED_INT_RE = re.compile(r"0x[0-9A-Fa-f](_?[0-9A-Fa-f])*|0o[0-7](_?[0-7])*|0b[01](_?[01])*")
_FLOAT_RE = re.compile(
    r"[+-]?(0|[1-9](_?[0-9])*)"
    r"((\.[0-9](_?[0-9])*)([eE][+-]?[0-9](_?[0-9])*)?|[eE][+-]?[0-9](_?[0-9])*)"
)
_SPECIAL_FLOAT_RE = re.compile(r"[+-]?(inf|nan)")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.root: dict[str, Any] = {}
        # Tables created by a [header] (may not be defined again) and tables that are fixed
        # (inline tables, arrays' members can't be extended by dotted keys from elsewhere).
        self.defined: set[int] = set()
        self.frozen: set[int] = set()

    # -- helpers ------------------------------------------------------------------------

    def error(self, message: str) -> TOMLDecodeError:
        line = self.text.count("\n", 0, self.pos) + 1
        return TOMLDecodeError(f"{message} (at line {line})")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            end = len(self.text) if end < 0 else end
            body = self.text[self.pos + 1 : end]
            if body.endswith("\r") and end < len(self.text):
                body = body[:-1]  # the CR of a CRLF line ending; a bare CR is an error
            for char in body:
                if (ord(char) < 0x20 and char != "\t") or char == "\x7f":
                    raise self.error("control character in comment")
            self.pos = end

    def skip_ws_comments_newlines(self) -> None:
        while True:
            self.skip_ws()
            self.skip_comment()
            if self.text.startswith("\r\n", self.pos):
                self.pos += 2
            elif self.peek() == "\n":
                self.pos += 1
            else:
                return

    def expect_line_end(self) -> None:
        self.skip_ws()
        self.skip_comment()
        if self.text.startswith("\r\n", self.pos):
            self.pos += 2
        elif self.peek() == "\n":
            self.pos += 1
        elif self.peek():
            raise self.error(f"expected the end of the line, found {self.peek()!r}")

    # -- document -----------------------------------------------------------------------

    def parse(self) -> dict[str, Any]:
        current = self.root
        while True:
            self.skip_ws_comments_newlines()
            if not self.peek():
                return self.root
            if self.text.startswith("[[", self.pos):
                self.pos += 2
                current = self.array_table_header()
            elif self.peek() == "[":
                self.pos += 1
                current = self.table_header()
            else:
                self.key_value(current)
            self.expect_line_end()

    def table_header(self) -> dict[str, Any]:
        keys = self.key()
        if self.peek() != "]":
            raise self.error("expected ']' after the table name")
        self.pos += 1
        table = self.descend(self.root, keys[:-1], header=True)
        last = keys[-1]
        if last in table:
            existing = table[last]
            if not isinstance(existing, dict) or id(existing) in self.defined:
                raise self.error(f"table {'.'.join(keys)!r} is defined twice")
            if id(existing) in self.frozen:
                raise self.error(f"cannot redefine {'.'.join(keys)!r}")
        else:
            table[last] = {}
        self.defined.add(id(table[last]))
        return table[last]

    def array_table_header(self) -> dict[str, Any]:
        keys = self.key()
        if not self.text.startswith("]]", self.pos):
            raise self.error("expected ']]' after the array-of-tables name")
        self.pos += 2
        table = self.descend(self.root, keys[:-1], header=True)
        last = keys[-1]
        array = table.setdefault(last, [])
        if not isinstance(array, list) or id(array) in self.frozen:
            raise self.error(f"{'.'.join(keys)!r} is not an array of tables")
        new: dict[str, Any] = {}
        array.append(new)
        return new

    def descend(self, table: dict[str, Any], keys: list[str], *, header: bool) -> dict[str, Any]:
        for key in keys:
            value = table.setdefault(key, {})
            if isinstance(value, list) and header and id(value) not in self.frozen:
                value = value[-1]  # [a.b] inside the last [[a]]
            if not isinstance(value, dict) or id(value) in self.frozen:
                raise self.error(f"key {key!r} is already a value, not a table")
            if not header and id(value) in self.defined:
                raise self.error(f"cannot extend table {key!r} with a dotted key")
            table = value
        return table

    def key_value(self, table: dict[str, Any]) -> None:
        keys = self.key()
        if self.peek() != "=":
            raise self.error("expected '=' after a key")
        self.pos += 1
        self.skip_ws()
        value = self.value()
        target = self.descend(table, keys[:-1], header=False)
        if keys[-1] in target:
            raise self.error(f"key {'.'.join(keys)!r} is defined twice")
        target[keys[-1]] = value

    # -- keys ---------------------------------------------------------------------------

    def key(self) -> list[str]:
        parts = []
        while True:
            self.skip_ws()
            char = self.peek()
            if char == '"':
                parts.append(self.basic_string())
            elif char == "'":
                parts.append(self.literal_string())
            else:
                start = self.pos
                while self.peek() and self.peek() in _BARE_KEY_CHARS:
                    self.pos += 1
                if start == self.pos:
                    raise self.error("expected a key")
                parts.append(self.text[start : self.pos])
            self.skip_ws()
            if self.peek() != ".":
                return parts
            self.pos += 1

    # -- values -------------------------------------------------------------------------

    def value(self) -> Any:
        char = self.peek()
        if self.text.startswith('"""', self.pos):
            return self.multiline_basic_string()
        if self.text.startswith("'''", self.pos):
            return self.multiline_literal_string()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        if char == "[":
            return self.array()
        if char == "{":
            return self.inline_table()
        for word, result in (("true", True), ("false", False)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return result
        return self.number()

    def number(self) -> int | float:
        text = self.text
        if _DATE_RE.match(text, self.pos):
            raise self.error("dates and times are not supported by this TOML reader")
        for regex, convert in (
            (_SPECIAL_FLOAT_RE, float),
            (_PREFIXED_INT_RE, lambda s: int(s, 0)),
            (_FLOAT_RE, float),
            (_INT_RE, int),
        ):
            match = regex.match(text, self.pos)
            if match:
                end = match.end()
                if end < len(text) and (text[end].isalnum() or text[end] in "._"):
                    continue
                self.pos = end
                return convert(match.group().replace("_", ""))
        raise self.error("invalid value")

    def array(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip_ws_comments_newlines()
            if self.peek() == "]":
                self.pos += 1
                break
            items.append(self.value())
            self.skip_ws_comments_newlines()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() == "]":
                self.pos += 1
                break
            else:
                raise self.error("expected ',' or ']' in an array")
        self.frozen.add(id(items))
        return items

    def inline_table(self) -> dict[str, Any]:
        self.pos += 1
        table: dict[str, Any] = {}
        self.skip_ws()
        if self.peek() == "}":
            self.pos += 1
            self.frozen.add(id(table))
            return table
        while True:
            self.key_value(table)
            self.skip_ws()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() == "}":
                self.pos += 1
                break
            else:
                raise self.error("expected ',' or '}' in an inline table")
        self.frozen.add(id(table))
        return table

    # -- strings ------------------------------------------------------------------------

    def check_char(self, char: str, *, multiline: bool) -> None:
        if char == "\n" and multiline:
            return
        if (ord(char) < 0x20 and char != "\t") or char == "\x7f":
            raise self.error("control character in a string")

    def escape(self) -> str:
        char = self.peek()
        if char in _ESCAPES:
            self.pos += 1
            return _ESCAPES[char]
        if char in ("u", "U"):
            width = 4 if char == "u" else 8
            digits = self.text[self.pos + 1 : self.pos + 1 + width]
            if len(digits) != width or not all(c in string.hexdigits for c in digits):
                raise self.error("bad unicode escape")
            code = int(digits, 16)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise self.error("unicode escape is not a scalar value")
            self.pos += 1 + width
            return chr(code)
        raise self.error(f"unknown escape \\{char}")

    def basic_string(self) -> str:
        self.pos += 1
        out = []
        while True:
            char = self.peek()
            if not char or char == "\n":
                raise self.error("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                out.append(self.escape())
            else:
                self.check_char(char, multiline=False)
                out.append(char)

    def literal_string(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        newline = self.text.find("\n", self.pos)
        if end < 0 or 0 <= newline < end:
            raise self.error("unterminated string")
        value = self.text[self.pos : end]
        for char in value:
            self.check_char(char, multiline=False)
        self.pos = end + 1
        return value

    def skip_first_newline(self) -> None:
        if self.text.startswith("\r\n", self.pos):
            self.pos += 2
        elif self.peek() == "\n":
            self.pos += 1

    def multiline_basic_string(self) -> str:
        self.pos += 3
        self.skip_first_newline()
        out = []
        while True:
            if self.text.startswith('"""', self.pos):
                # Up to two quotes may sit right before the closing delimiter.
                extra = 0
                while extra < 2 and self.text.startswith('"', self.pos + 3 + extra):
                    extra += 1
                out.append('"' * extra)
                self.pos += 3 + extra
                return "".join(out)
            char = self.peek()
            if not char:
                raise self.error("unterminated multi-line string")
            self.pos += 1
            if char == "\\":
                # A line-ending backslash trims the newline and following whitespace.
                rest = self.pos
                while self.text[rest : rest + 1] in (" ", "\t"):
                    rest += 1
                if self.text.startswith("\n", rest) or self.text.startswith("\r\n", rest):
                    self.pos = rest
                    while self.peek() in (" ", "\t", "\n", "\r") and self.peek():
                        self.pos += 1
                else:
                    out.append(self.escape())
            elif char == "\r" and self.peek() == "\n":
                continue
            else:
                self.check_char(char, multiline=True)
                out.append(char)

    def multiline_literal_string(self) -> str:
        self.pos += 3
        self.skip_first_newline()
        end = self.text.find("'''", self.pos)
        if end < 0:
            raise self.error("unterminated multi-line string")
        run = end
        while self.text.startswith("'", run):
            run += 1
        if run - end > 5:
            raise self.error("too many quotes closing a multi-line string")
        end = run - 3  # up to two quotes may sit right before the closing delimiter
        value = self.text[self.pos : end].replace("\r\n", "\n")
        for char in value:
            self.check_char(char, multiline=True)
        self.pos = end + 3
        return value


def loads(text: str) -> dict[str, Any]:
    """Parse ``text`` (the TOML subset described in the module docstring).

    Raises:
        TOMLDecodeError: the text is not valid TOML or uses a feature outside the subset.
    """
    if not isinstance(text, str):
        raise TypeError("loads() takes a str")
    return _Parser(text).parse()
