"""phishme-intel: sync Cofense (PhishMe) Intelligence threats into security products.

The library API is small::

    import phishme_intel
    report = phishme_intel.run("/etc/phishme-intel/config.ini")
    print(report.delivered, report.withdrawn)
    health = phishme_intel.status("/etc/phishme-intel/config.ini")   # from the status file
    preview = phishme_intel.dry_run("/etc/phishme-intel/config.ini")  # writes nothing
    phishme_intel.reset("/etc/phishme-intel/config.ini")              # the next run backfills

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
from .health import Health
from .job import check, reset, run, status
from .preview import DryRun, dry_run
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
    "DryRun",
    "Error",
    "Health",
    "LockHeld",
    "Report",
    "UnknownPosition",
    "__version__",
    "check",
    "dry_run",
    "reset",
    "run",
    "status",
]
