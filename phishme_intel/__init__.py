"""phishme-intel: sync Cofense (PhishMe) Intelligence threats into security products.

The library API is small::

    import phishme_intel
    report = phishme_intel.run("/etc/phishme-intel/config.ini")
    print(report.delivered, report.withdrawn)

Every error it raises on purpose is a :class:`phishme_intel.Error`, with an ``exit_code``.
"""

from .errors import (
    AdapterError,
    ApiError,
    ApiResponseError,
    ApiUnavailable,
    AuthError,
    CheckpointError,
    ConfigError,
    Error,
    LockHeld,
    UnknownPosition,
)
from .job import check, run
from .sync import Report
from .version import __version__

__all__ = [
    "AdapterError",
    "ApiError",
    "ApiResponseError",
    "ApiUnavailable",
    "AuthError",
    "CheckpointError",
    "ConfigError",
    "Error",
    "LockHeld",
    "Report",
    "UnknownPosition",
    "__version__",
    "check",
    "run",
]
