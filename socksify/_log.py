"""Logging for the shim without importing :mod:`logging` at start-up.

Rules of this module:

- Messages go to the standard ``logging`` loggers (``socksify.client``, ``socksify.patch``,
  ...), so an application that configures logging sees them as usual.
- Logger objects are looked up once per name and kept (``logging.getLogger`` takes a lock
  on every call, and the hot paths ask on every connection).
- ``logging`` (about 2 ms with its imports) is loaded only when a message must go somewhere:
  the application already imported it, or the level set by ``configure()`` (SOCKSIFY_LOG /
  ``--log-level``) lets the message through. In the second case one handler writing
  ``socksify: message`` lines to stderr is put on the ``socksify`` logger (the shim's
  "lines on stderr" contract); ``unconfigure()`` takes it away again.
"""

from __future__ import annotations

import sys

__all__ = ["DEBUG", "ERROR", "INFO", "WARNING", "configure", "enabled", "log", "unconfigure"]

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_LEVELS = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR}
_NEVER = 100

_threshold = _NEVER
_handler = None
_saved_propagate = True
_loggers: dict = {}  # name -> logging.Logger (loggers live for the life of the process)


def _logger(name: str):
    logger = _loggers.get(name)
    if logger is None:
        logger = _loggers[name] = sys.modules["logging"].getLogger(name)
    return logger


def configure(level: str) -> None:
    """Send messages at ``level`` and above to stderr as ``socksify: ...`` lines."""
    global _threshold
    _threshold = _LEVELS[level]
    if _handler is not None:
        sys.modules["logging"].getLogger("socksify").setLevel(_threshold)


def unconfigure() -> None:
    global _threshold, _handler
    _threshold = _NEVER
    if _handler is not None:
        logger = sys.modules["logging"].getLogger("socksify")
        logger.removeHandler(_handler)
        logger.propagate = _saved_propagate
        logger.setLevel(0)
        _handler = None


def _install_handler(logging) -> None:
    global _handler, _saved_propagate
    logger = logging.getLogger("socksify")
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("socksify: %(message)s"))
    logger.addHandler(_handler)
    _saved_propagate = logger.propagate
    logger.propagate = False  # one line per message, even if the application logs too
    logger.setLevel(_threshold)


def enabled(level: int, name: str = "socksify") -> bool:
    """False when ``log(name, level, ...)`` would drop the message: callers on hot paths
    skip building costly arguments (and the call) then."""
    if level >= _threshold:
        return True
    return "logging" in sys.modules and _logger(name).isEnabledFor(level)


def log(name: str, level: int, message: str, *args) -> None:
    """``logging.getLogger(name).log(level, message, *args)``, when anyone can hear it."""
    if level < _threshold:
        if "logging" not in sys.modules:
            return
    elif _handler is None:
        import logging

        _install_handler(logging)
    _logger(name).log(level, message, *args)
