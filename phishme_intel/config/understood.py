"""What a validated config means, in words, for ``--check``; and the config folder a run needs.

``--check`` shows the dates as understood (ISO 8601, UTC), the span a backfill would cover,
the adapters that are on and where each secret came from (never its value), so a mistake
shows before the first run rather than after it.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd

from ..errors import ConfigError
from . import Config

_UTC = dt.timezone.utc


def utc(moment: dt.datetime) -> str:
    """``2026-10-01T00:00:00Z``: an instant in ISO 8601, in UTC."""
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(config: Config, now: dt.datetime) -> list[str]:
    """The lines ``--check`` prints after its verdict: what this config makes a run do."""
    start = config.api.init_date
    state = config.state
    if state.position:
        sync = "a position is stored: the next run follows the updates feed from it"
    elif state.backfill_until is not None:
        resume = dt.datetime.fromtimestamp(state.backfill_done or start.timestamp(), _UTC)
        until = dt.datetime.fromtimestamp(state.backfill_until, _UTC)
        sync = f"a backfill is unfinished: the next run resumes it from {utc(resume)} up to {utc(until)}"
    else:
        sync = f"no position is stored: the next run backfills {_span(now - start)} of threats up to now"
    lines = [
        f"init_date: {utc(start)} (UTC)",
        f"sync: {sync}",
        f"adapters: {', '.join(config.adapters) or 'none'}",
    ]
    lines += [f"{key}: from {place}" for key, place in sorted(config.origins.items())]
    return lines


def _span(length: dt.timedelta) -> str:
    days = length.total_seconds() / 86400
    if days >= 2:
        return f"{days:.0f} days"
    return f"{length.total_seconds() / 3600:.0f} hours"


def require_writable_folder(config: Config) -> None:
    """Raise ConfigError (78) unless this user may create files in config.ini's folder.

    A run stores its position by writing a new config.ini beside the old one and renaming
    it over it: without that right every run would deliver and then fail to store.
    """
    folder = os.path.dirname(config.path)
    if not os.access(folder, os.W_OK | os.X_OK):
        user = _user()
        raise ConfigError(config.path, [
            f"the folder {folder} of config.ini is not writable by the user {user}, and a run stores its "
            f"position by writing a new config.ini there: make {folder} writable by {user} (chown), or move "
            "config.ini to a folder it owns"
        ])


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"
