"""Unexpected failures (bugs, a plug-in that crashes) in any command: one line for the user,
the traceback in the log file.

:func:`reported` wraps each library command (:mod:`.commands`). An
:class:`~phishme_intel.errors.Error` passes as it is; any other exception has its traceback
written to the config's log file, with every secret masked, even when it happened before
the config could be loaded (the log file is then found as far as the file tells), and
becomes :class:`~phishme_intel.errors.Unexpected` (exit 1), whose message says where the
traceback is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from .config import log_target
from .errors import Error, Unexpected
from .logs import logging_to, redact

log = logging.getLogger("phishme_intel")
P = ParamSpec("P")
R = TypeVar("R")


def reported(command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Every unexpected exception of ``command`` becomes Unexpected, its traceback in the log file.

    The wrapped function's first argument is the config path. An Error passes as it is.
    """
    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except Error:
                raise
            except Exception as exc:
                config_path = kwargs.get("config_path", args[0] if args else "")
                raise unexpected(command, str(config_path), exc) from None

        return call

    return wrap


def unexpected(command: str, config_path: str, exc: Exception) -> Unexpected:
    """Write ``exc``'s traceback to the config's log file (if it has one); the error that says where."""
    log_file, secrets = log_target(config_path)
    where = "no log file could be found in the config to keep its traceback"
    if log_file is not None:
        try:
            with logging_to(log_file, "error", secrets):
                log.error("%s failed: unexpected error", command, exc_info=exc)
            where = f"the traceback is in {log_file}"
        except OSError as error:
            where = f"its traceback could not be written to {log_file} ({error.strerror or error})"
    return Unexpected(redact(f"{command}: unexpected {type(exc).__name__}; {where}", secrets))
