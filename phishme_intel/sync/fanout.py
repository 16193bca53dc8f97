"""The enabled adapters seen as one destination.

The engine hands every batch to :class:`Fanout`, which passes it to each adapter in
turn: the store adapters first, then the others in the order given, so an adapter built
from the store (:attr:`~phishme_intel.adapters.base.Adapter.reads_store`) sees each commit
of the store once it is made. Such an adapter gets a reader of the first store before it
opens. An adapter that fails with anything but an AdapterError (a bug, an OSError it did
not expect) is still reported as an AdapterError naming it, so the run fails cleanly and
the position stays where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..adapters.base import Adapter
from ..adapters.store import StoreReader
from ..errors import AdapterError, Interrupted
from ..models import Threat, ThreatRef

log = logging.getLogger(__name__)


class Fanout:
    """Fans deliveries, withdrawals and commits out to every adapter."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = sorted(adapters, key=lambda adapter: not adapter.keeps_store)
        self._opened: list[Adapter] = []
        self._reader: StoreReader | None = None

    def open(self) -> None:
        """Open every adapter; an adapter built from the store first gets the store's reader."""
        for adapter in self.adapters:
            if adapter.reads_store:
                if self._reader is None:
                    raise AdapterError(adapter.name, "is built from the IOC store, but no store adapter is enabled")
                _guard(adapter, "open", adapter.read_from, self._reader)
            _guard(adapter, "open", adapter.open)
            self._opened.append(adapter)
            if adapter.keeps_store and self._reader is None and any(other.reads_store for other in self.adapters):
                self._reader = _guard(adapter, "open", adapter.reader)

    def deliver(self, threats: Sequence[Threat]) -> None:
        if threats:
            for adapter in self.adapters:
                _guard(adapter, "deliver", adapter.deliver, threats)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        if refs:
            for adapter in self.adapters:
                _guard(adapter, "withdraw", adapter.withdraw, refs)

    def commit(self) -> None:
        for adapter in self.adapters:
            _guard(adapter, "commit", adapter.commit)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for adapter in reversed(self._opened):
            try:
                adapter.close()
            except Exception:  # close must not mask the error that ended the run
                log.exception("adapter %s failed to close", adapter.name)
        self._opened.clear()


def _guard(adapter: Adapter, action: str, call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except (AdapterError, Interrupted):  # a signal during an adapter's retry wait stops the run
        raise
    except Exception as exc:
        log.exception("adapter %s failed to %s", adapter.name, action)
        raise AdapterError(adapter.name, f"failed to {action}: {type(exc).__name__}: {exc}") from None
