"""The one interface between the sync engine and a product.

Terminology (the full vocabulary is in :mod:`phishme_intel.models`):

adapter
    The code that puts threats into one product: a database, files, a syslog receiver, an
    HTTP collector. One file per adapter in this package, named as its config section:
    ``adapters/sqlite.py`` serves ``[integration_sqlite]``. Third-party adapters register
    under the entry-point group ``phishme_intel.adapters`` and are found the same way.
delivery
    :meth:`Adapter.deliver` hands over a batch of threats. It must be idempotent: the sync
    delivers *at least once* (a run that fails before its checkpoint is written delivers the
    same threats again next time), so delivering a threat the product already holds must
    replace it, never duplicate it.
withdrawal
    :meth:`Adapter.withdraw` hands over threats the vendor deleted. Each adapter says in its
    docstring what a withdrawal means for its product: the data removed, or a removal event
    emitted. Withdrawing a threat the product never held is not an error.
commit
    :meth:`Adapter.commit` makes every delivery and withdrawal since the last commit durable.
    Only after every adapter's commit returns does the sync store its position, so whatever
    a commit covers is never lost, even if the process dies before :meth:`Adapter.close`.
    Work a run delivered but never committed is delivered again by the next run; whether it
    reached the product meanwhile (an event already sent) or was discarded, each adapter's
    docstring says.
store
    An adapter that keeps the IOC store (:attr:`Adapter.keeps_store`) offers a
    :class:`~phishme_intel.adapters.store.StoreReader`; an adapter built from the store
    (:attr:`Adapter.reads_store`) is handed that reader before it opens. The engine opens,
    delivers to and commits the store first, so a reader sees each commit once it is made.

Adapters know nothing of positions, search windows, the updates feed or HTTP to the API:
they see threats and deletions, in order, batch after batch. An adapter that cannot do its
work raises :class:`~phishme_intel.errors.AdapterError` naming what failed; the run then
ends with a non-zero exit and the position stays where it was.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..models import DEFAULT_GATE, Gate, Threat, ThreatRef
from ..options import Option
from .store import StoreReader


class Adapter(ABC):
    """A product destination. Lifecycle: ``open``, then any number of ``deliver``/``withdraw``
    batches each followed sooner or later by ``commit``, then ``close`` (always called).

    A sync calls every method of an adapter (``read_from`` too) from one thread of the
    adapter's own, never the main thread (:mod:`phishme_intel.sync.fanout`): a connection made
    in ``open`` is used on the thread that made it. The threats it is handed are shared with
    the other adapters, each on its thread: an adapter reads them and never changes them."""

    #: The adapter's config name: the ``<name>`` of ``[integration_<name>]``.
    name: ClassVar[str]
    #: The keys of its config section besides ``use``, parsed with :mod:`phishme_intel.options`.
    options: ClassVar[tuple[Option, ...]] = ()
    #: The run's indicator gate, set by the sync before :meth:`open`: an adapter that emits
    #: indicators emits none its allow-list covers (:attr:`Threat.emitted_indicators
    #: <phishme_intel.models.Threat.emitted_indicators>` leaves them out already).
    gate: Gate = DEFAULT_GATE
    #: True for an adapter that keeps the IOC store: :meth:`reader` then reads it.
    keeps_store: ClassVar[bool] = False
    #: True for an adapter built from the IOC store: :meth:`read_from` hands it the store's reader.
    reads_store: ClassVar[bool] = False

    def __init__(self, settings: Mapping[str, Any]) -> None:
        """``settings``: the parsed values of :attr:`options`, relative paths already resolved."""
        self.settings = settings
        self.log = logging.getLogger(f"phishme_intel.adapters.{self.name}")

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        """Problems with a combination of settings (each ``key: what is wrong``); none by default.

        Called during config validation, before anything runs, for the enabled adapters only.
        """
        return []

    def reader(self) -> StoreReader:
        """A reader of the store this adapter keeps (when :attr:`keeps_store`); needs no ``open``.

        Raises AdapterError when the store cannot be reached or does not exist yet.
        """
        raise NotImplementedError(f"the adapter {self.name} keeps no store")

    def read_from(self, store: StoreReader) -> None:  # noqa: B027 - only readers of the store need it
        """Take the store's reader (when :attr:`reads_store`); called before ``open``, once per run."""

    def open(self) -> None:  # noqa: B027 - most adapters need no opening step
        """Connect or open files. Raises AdapterError if the destination cannot be used."""

    @abstractmethod
    def deliver(self, threats: Sequence[Threat]) -> None:
        """Insert or replace each threat. Raises AdapterError on failure."""

    @abstractmethod
    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        """Act on the vendor's deletion of each threat. Raises AdapterError on failure."""

    @abstractmethod
    def commit(self) -> None:
        """Make every delivery and withdrawal so far durable. Raises AdapterError on failure."""

    def close(self) -> None:  # noqa: B027 - most adapters hold nothing to release
        """Release connections and files. Must not raise; called after success and failure."""
