"""The enabled adapters seen as one destination.

The engine hands every batch to :class:`Fanout`, which passes it to each adapter in
turn. An adapter that fails with anything but an AdapterError (a bug, an OSError it did
not expect) is still reported as an AdapterError naming it, so the run fails cleanly and
the position stays where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..adapters.base import Adapter
from ..errors import AdapterError, Interrupted
from ..models import Threat, ThreatRef

log = logging.getLogger(__name__)


class Fanout:
    """Fans deliveries, withdrawals and commits out to every adapter."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = list(adapters)
        self._opened: list[Adapter] = []

    def open(self) -> None:
        for adapter in self.adapters:
            _guard(adapter, "open", adapter.open)
            self._opened.append(adapter)

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
        for adapter in reversed(self._opened):
            try:
                adapter.close()
            except Exception:  # close must not mask the error that ended the run
                log.exception("adapter %s failed to close", adapter.name)
        self._opened.clear()


def _guard(adapter: Adapter, action: str, call: Callable[..., None], *args: Any) -> None:
    try:
        call(*args)
    except (AdapterError, Interrupted):  # a signal during an adapter's retry wait stops the run
        raise
    except Exception as exc:
        log.exception("adapter %s failed to %s", adapter.name, action)
        raise AdapterError(adapter.name, f"failed to {action}: {type(exc).__name__}: {exc}") from None
