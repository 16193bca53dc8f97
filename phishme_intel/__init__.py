"""phishme-intel: sync Cofense (PhishMe) Intelligence threats into security products.

The library API is small::

    import phishme_intel
    report = phishme_intel.run("/var/lib/phishme-intel/config.ini")
    print(report.delivered, report.withdrawn)
    health = phishme_intel.status("/var/lib/phishme-intel/config.ini")   # from the status file
    preview = phishme_intel.dry_run("/var/lib/phishme-intel/config.ini")  # writes nothing
    phishme_intel.reset("/var/lib/phishme-intel/config.ini")              # the next run backfills

Every error it raises on purpose is a :class:`phishme_intel.Error`, with an ``exit_code``.

How the package is laid out (for newcomers)
-------------------------------------------
Data flows one way: ``cli`` parses argv and calls one function of ``commands`` (the library
API), which loads ``config``, takes the ``lock``, sets up ``logs`` and hands the ``sync``
engine an API ``client``, the enabled ``adapters`` and a checkpoint from ``state``. The
engine fetches pages through the client, turns them into ``models`` (threats, indicators,
changelog entries), fans them out to the adapters, commits them, and only then stores the
new position through the checkpoint. ``monitoring`` reads the run's report and state
afterwards (status file, metrics, ``--status``, the progress line).

The rooms, and what each may import (always downward in this list):

``cli``
    argv to a command, words and exit codes. Imports ``commands``, ``service``, ``monitoring``.
``service``
    ``--every``: ``commands.run`` once per slot until a signal, serving ``monitoring.http``.
    Imports ``commands`` and anything below.
``commands``, ``lookup``
    run, check, status, dry_run, reset: one whole job each, an unexpected failure's
    traceback kept in the log; ``lookup``: an analyst's values against the store. Import
    anything below.
``config/``
    reading and validating config.ini: ``sources`` (where a secret comes from),
    ``indicators`` (``[indicators]``), ``understood`` (what ``--check`` says), ``vendor4x``
    (the 4.x layout). Imports ``adapters`` (to list and validate them), ``models``,
    ``options``, ``state``, ``files``, ``errors``.
``schedule``, ``lock``, ``logs``
    when a run starts, one run at a time, where its log goes.
``sync/``
    the engine: ``engine`` (one run's parts and commit), ``backfill``, ``updates``,
    ``pipeline`` (concurrent fetches, in-order delivery), ``fanout`` (the adapters as one).
    Imports ``client``, ``models``, ``state``, ``adapters.base``; never a concrete adapter.
``client/``
    the API over HTTP, bounded in time and size; ``jsontext`` (decoding that keeps each
    threat's JSON text), ``tls`` (what a TLS failure was). Imports ``models``, ``retry``.
``models/``
    threats, changelog entries and indicators, parsed and checked: ``limits`` (values every
    adapter can write), ``indicators`` (the indicator gate: one canonical form per kind),
    ``allowlist``. Imports ``errors``.
``adapters/``
    ``base`` (the interface and its vocabulary), ``store`` (what blocklists and lookup read
    of a store), one file per product named as its config section, helpers private to
    adapters with a leading underscore (``_cef``, ``_syslog``, ``_stix``, ``_taxii``...).
    Imports ``models``, ``options``, ``files``, ``file_batch``, ``retry``, ``memory``, ``errors``.
``monitoring/``
    ``status_file``, ``metrics``, ``health`` (``--status``), ``progress``, ``timefmt``,
    ``http`` (/healthz and /metrics for the service). Imports ``state``, ``files``; never the engine.
``state``, ``options``, ``files``, ``file_batch``, ``retry``, ``memory``, ``interrupts``, ``errors``, ``version``
    the floor: the sync state and report and where they are kept, typed config values,
    file writing (atomic, never through a link; many files at one commit, created by a
    ``tar`` process), back-off, ``Retry-After`` and pacing, how
    glibc's malloc is set up and gives memory back, stop requests from SIGINT/SIGTERM, the
    error types.
``simulator/``, ``demo``
    the bundled API simulator and ``python -m phishme_intel.demo``; nothing imports them.
"""

from .commands import DryRun, check, dry_run, reset, run, status
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
from .monitoring.health import Health
from .state import Report
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
