"""Reading the IOC store: what the blocklists adapter and ``lookup`` see of it.

store
    The adapter that keeps every threat and its indicators in a database users query:
    ``[integration_sqlite]`` or ``[integration_postgresql]``. Both keep the same tables
    (``threats``, ``indicators``, ``deleted_threats``, ``indicator_history``, ``meta``) and
    offer the same :class:`StoreReader`. A store adapter sets
    :attr:`~phishme_intel.adapters.base.Adapter.keeps_store` and returns a reader from
    :meth:`~phishme_intel.adapters.base.Adapter.reader`.
history
    One row per indicator and threat that ever listed it: when this store first and last
    received it from that threat, and when it stopped listing it (the threat withdrawn, or
    a new version of the threat without it); kept for good, unlike the ``indicators`` rows.

Times a reader returns are epoch milliseconds, whatever the store's column type.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

#: How many values one lookup query asks for at most (SQLite allows 32,766 parameters).
CHUNK = 500
#: How many rows :meth:`StoreReader.listed` fetches at a time.
FETCH_ROWS = 1000


class Listing(NamedTuple):
    """An indicator a store lists now, with its threat's context.

    ``detail_url`` (the threat's ``threatDetailURL``) is read by :meth:`StoreReader.find`
    only; :meth:`StoreReader.listed` leaves it None. A named tuple: a rebuild of the
    blocklists reads one per stored indicator, and a tuple is made in a third of the time.
    """

    kind: str
    value: str
    impact: str | None
    role: str | None
    malware_family: str | None
    threat_type: str
    threat_id: int
    threat_label: str | None
    first_published: int
    last_published: int
    detail_url: str | None = None


@dataclass(frozen=True, slots=True)
class Sighting:
    """A history row: ``value`` of ``kind`` received from one threat, and when it stopped being listed."""

    kind: str
    value: str
    threat_type: str
    threat_id: int
    first_seen: int
    last_seen: int
    withdrawn_at: int | None


class StoreReader(ABC):
    """Read access to a store; every call sees what the store had committed when the call began.

    Every method raises :class:`~phishme_intel.errors.AdapterError` when the store cannot be read.
    """

    #: Where the store is, for messages: a file path, or a database and host (never a password).
    where: str
    #: The store's file, for a store kept in one file (SQLite); None for a server.
    path: str | None = None

    @abstractmethod
    def listed(self, kinds: Sequence[str], since: int, impacts: Collection[str] | None = None,
               url_without_scheme: bool = False) -> Iterator[Listing]:
        """Every indicator of ``kinds`` whose threat was last published at or after ``since`` (ms),
        and whose impact is one of ``impacts`` (None: any impact, or none).

        In the order of ``(kind, value)`` (by code point), read as they come (never all in memory);
        with ``url_without_scheme``, URLs in the order of what follows the first ``://`` of
        their value (:func:`without_scheme`), then of their value.
        """

    @abstractmethod
    def listed_values(self, kinds: Sequence[str], since: int, impacts: Collection[str] | None = None,
                      url_without_scheme: bool = False) -> Iterator[tuple[str, list[str]]]:
        """The distinct ``(kind, value)`` of :meth:`listed`, in its order, leaving out the indicators
        of threats whose last published time is not one from 1970 to 9999 (epoch milliseconds);
        as they are read, in runs of one kind: ``(kind, values)`` (see :func:`value_runs`)."""

    @abstractmethod
    def find(self, wanted: Collection[tuple[str, str]]) -> list[Listing]:
        """The indicators listed now whose ``(kind, value)`` is in ``wanted``, with their detail URL."""

    @abstractmethod
    def history(self, wanted: Collection[tuple[str, str]]) -> list[Sighting]:
        """The history rows whose ``(kind, value)`` is in ``wanted``, withdrawn or not."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection. Must not raise."""


def without_scheme(url: str) -> str:
    """``url`` without its scheme: what follows its first ``://`` (all of it when it has none)."""
    return url.split("://", 1)[-1]


def value_runs(chunks: Iterable[Sequence[tuple[str, str]]]) -> Iterator[tuple[str, list[str]]]:
    """``(kind, values)`` of each kind in each of ``chunks`` of ``(kind, value)`` rows, in the order they
    come (that of :meth:`StoreReader.listed_values`), without repeating a row: a row equal to one before
    it (next to it, in that order) is left out. Made a chunk at a time, not a row."""
    last: tuple[str, str] | None = None
    for rows in chunks:
        kind = rows[0][0]
        runs = [(kind, rows)] if rows[-1][0] == kind else itertools.groupby(rows, key=itemgetter(0))
        for kind, pairs in runs:
            values = list(dict.fromkeys(map(itemgetter(1), pairs)))
            if last == (kind, values[0]):
                del values[0]
            if values:
                last = kind, values[-1]
                yield kind, values


def matching(wanted: Collection[tuple[str, str]], rows: Callable[[list[str]], Iterable[Sequence[Any]]],
             make: Callable[..., T]) -> list[T]:
    """``make(*row)`` of each row that ``rows(values)`` gives whose ``(kind, value)`` is ``wanted``.

    ``rows`` runs a ``value IN (...)`` query: it gets the distinct values of ``wanted`` in lists
    of at most :data:`CHUNK`.
    """
    values = sorted({value for _kind, value in wanted})
    return [make(*row) for start in range(0, len(values), CHUNK)
            for row in rows(values[start:start + CHUNK]) if (row[0], row[1]) in wanted]
