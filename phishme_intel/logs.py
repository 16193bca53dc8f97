"""Where a run's story is told: a rotating log file (5 MB a file, 10 files in all).

Every line passes through :class:`RedactingFormatter`, which replaces each secret of the
config (API password, proxy password, adapter tokens, also in URL-encoded form) with
``***``, tracebacks included: a second line of defence behind never logging them at all.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO
from urllib.parse import quote

from urllib3.exceptions import InsecureRequestWarning

from .errors import Error
from .files import open_no_follow

MAX_BYTES = 5 * 1024 * 1024
BACKUP_COUNT = 9
FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
LOGGERS = ("phishme_intel", "urllib3")
SHOWN = 200
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


class RedactingFormatter(logging.Formatter):
    """A Formatter that masks every given secret in the finished line; time stamps in UTC.

    ``2026-11-23T11:30:00.120Z``: ISO 8601 with its ``Z``, like every other time this tool
    writes (status file, JSON Lines, ``--check``), whatever the machine's time zone.
    """

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self, secrets: Iterable[str], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        masked = {form for secret in secrets if secret for form in (secret, quote(secret, safe=""))}
        self.secrets = sorted(masked, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file, never opened through a symbolic link; a new one gets what the umask gives."""

    def _open(self) -> TextIO:
        fd = open_no_follow(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def shown(text: str, limit: int = SHOWN) -> str:
    """Text from outside (a server's error page, a proxy's answer) made safe to show on one line.

    Control characters (terminal escape sequences included), and Unicode format characters
    such as bidirectional overrides, are removed; runs of white space become one space; the
    result is cut to ``limit`` characters, ``…`` marking the cut.
    """
    text = " ".join(_UNSHOWABLE.sub("", text.replace("\x1b", " ")).split())
    return text[:limit] + ("…" if len(text) > limit else "")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@contextmanager
def logging_to(log_file: str | None, level: str, secrets: Iterable[str], verbose: bool = False) -> Iterator[None]:
    """Send phishme_intel's (and urllib3's) log lines to ``log_file`` (and stderr if ``verbose``).

    ``log_file`` None writes no file (a dry run). Raises OSError when the log file cannot be opened.
    An :class:`~phishme_intel.errors.Error` leaving the block has every secret masked in its
    message, so whatever part of the run wrote it, the user never sees a secret in it.
    urllib3's warning about unverified TLS, which it would print to stderr on every request,
    is silenced inside the block: the config's one warning per run (``ssl_verify = False``)
    goes to the log instead.
    A block inside another one (each run of the service) writes through the outer one's handlers.
    """
    outer = [handler.formatter for handler in logging.getLogger(LOGGERS[0]).handlers
             if isinstance(handler.formatter, RedactingFormatter)]
    formatter = outer[0] if outer else RedactingFormatter(list(secrets))
    handlers: list[logging.Handler] = []
    if log_file is not None and not outer:
        handlers.append(_LogFile(log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"))
    if verbose and not outer:
        handlers.append(logging.StreamHandler(sys.stderr))
    loggers = [] if outer else [logging.getLogger(name) for name in LOGGERS]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for handler in handlers:
        handler.setFormatter(formatter)
    for logger in loggers:
        logger.setLevel(level.upper())
        logger.propagate = False
        for handler in handlers:
            logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRequestWarning)
            yield
    except Error as exc:
        exc.args = (redact(str(exc), formatter.secrets),)
        raise
    finally:
        for logger, (old_level, old_propagate) in zip(loggers, saved, strict=True):
            for handler in handlers:
                logger.removeHandler(handler)
            logger.setLevel(old_level)
            logger.propagate = old_propagate
        for handler in handlers:
            handler.close()
