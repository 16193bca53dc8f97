"""Every error phishme-intel raises on purpose, and the exit code each one ends a run with.

One root, :class:`Error`, so a caller embedding the library can catch everything we raise
with one ``except``; one subclass per phase, so it can also catch just one kind. The exit
code lives on the class and follows ``sysexits.h`` where a code fits; the CLI turns an
:class:`Error` into its message and its code in one place (``cli.py``).

Messages are for people: they say what is wrong and, where we know it, what to do. They
never contain a secret (the API password, the proxy password, an adapter token).
"""

from __future__ import annotations

from collections.abc import Iterable


class Error(Exception):
    """Root of every error raised on purpose. Exit code 1."""

    exit_code: int = 1


class ConfigError(Error):
    """config.ini is missing, unreadable or invalid. Carries every problem found at once."""

    exit_code = 78

    def __init__(self, path: str, problems: Iterable[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid configuration in {path}:\n{lines}")


class LockHeld(Error):
    """Another run holds the lock file: this run did nothing."""

    exit_code = 75


class ApiError(Error):
    """The Intelligence API failed in a way retries did not cure."""

    exit_code = 69


class ApiUnavailable(ApiError):
    """The API could not be reached, or kept answering 429/5xx, after every retry."""


class ApiResponseError(ApiError):
    """The API answered, but not with what the protocol promises (bad JSON, success false, 4xx)."""


class AuthError(ApiError):
    """The API rejected the credentials (HTTP 401 or 403)."""

    exit_code = 77


class UnknownPosition(ApiError):
    """The API does not know the stored position (expired or mistyped)."""

    exit_code = 65


class AdapterError(Error):
    """A product adapter could not open, write, withdraw or commit. The position is not advanced."""

    exit_code = 74

    def __init__(self, adapter: str, message: str) -> None:
        self.adapter = adapter
        super().__init__(f"adapter {adapter}: {message}")


class CheckpointError(Error):
    """The position or backfill checkpoint could not be written back to config.ini."""

    exit_code = 73


class Unexpected(Error):
    """A bug or an unforeseen failure; the message says where its traceback was written. Exit 1."""


class Interrupted(Error):
    """SIGINT (Ctrl-C) asked the run to stop; it stopped at a safe point. Exit 130 (128 + 2)."""

    exit_code = 130


class Terminated(Interrupted):
    """SIGTERM (what systemd and ``kill`` send) asked the run to stop; it stopped at a safe point. Exit 143."""

    exit_code = 143


class ThreatFormatError(ValueError):
    """One threat from the API cannot be understood. Caught per threat: never ends a run."""
