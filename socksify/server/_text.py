"""Text from clients, made safe for a log line."""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str | None) -> str:
    """``text`` with control and other non-printable characters escaped (``\\n`` ->
    ``\\\\n``), so a client-chosen user name or host name cannot start a forged log line."""
    if text is None:
        return "-"
    if text.isprintable():
        return text
    return repr(text)[1:-1]
