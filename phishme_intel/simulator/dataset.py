"""The simulator's state: live threats, their publication dates, and the changelog.

Words used here:

- *key*: ``(kind, id)`` with kind ``"malware"`` or ``"phish"``; the two id spaces are
  independent (the same number may name a malware and a phish threat).
- *published*: a threat's ``lastPublished`` (malware) or ``lastDate`` (phish), in ms; search
  windows, sorting and re-publication all use it.
- *changelog*: every publication, re-publication and deletion, in time order. The initial
  dataset has one entry per threat at its publication time.
- *position*: a UUID naming "just after the first k changelog entries". Positions are
  deterministic (uuid5 of the dataset's parameters and k) and stay valid forever.

Threat documents are rendered on demand from (seed, key, dates), so a large dataset costs
only its ids and dates in memory. With ``prerender=True`` each threat's JSON text is rendered
once, when it is published or re-published, and served from memory: the answers then cost
the simulator almost no CPU (benchmarks use it so the simulator's share of the machine stays
small), at the price of the JSON of every live threat in memory.
"""

from __future__ import annotations

import bisect
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from .threats import COMPACT, Profile, render_malware, render_phish

Key = tuple[str, int]
KINDS = ("malware", "phish")
_DAY_MS = 86_400_000


@dataclass(slots=True)
class _Dates:
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Change:
    """One changelog entry."""

    kind: str
    threat_id: int
    occurred_on: int
    deleted: bool

    def as_json(self) -> dict[str, Any]:
        """The entry as the API answers it."""
        return {
            "threatId": self.threat_id,
            "threatType": self.kind,
            "occurredOn": self.occurred_on,
            "deleted": self.deleted,
        }


class UnknownPosition(KeyError):
    """A position this dataset never handed out (or not a UUID at all)."""


class Dataset:
    """Threats and changelog of one simulated API; every method is thread-safe."""

    def __init__(
        self,
        seed: int = 1,
        malware: int = 200,
        phish: int = 50,
        days: int = 30,
        detections: int | None = None,
        prerender: bool = False,
        profile: Profile = COMPACT,
    ) -> None:
        self.seed = seed
        #: How large the threats are; ``detections``, when given, overrides its vendor detections per executable.
        self.profile = profile if detections is None else replace(profile, detections=detections)
        self._documents: dict[Key, bytes] | None = {} if prerender else None
        self._lock = threading.Lock()
        self._rng = random.Random(f"{seed}:mutations")
        self._namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"phishme-simulator:{seed}:{malware}:{phish}:{days}")
        self._live: dict[Key, _Dates] = {}
        self._next_id: dict[str, int] = {}
        self._index: dict[str, list[tuple[int, str, int]]] | None = None
        self._changes: list[Change] = []
        self._position_index = {self._position_name(0): 0}
        self._generate(random.Random(seed), {"malware": malware, "phish": phish}, days)

    def _generate(self, rng: random.Random, counts: dict[str, int], days: int) -> None:
        now = int(time.time() * 1000)
        for kind, count in counts.items():
            threat_id = rng.randint(1_000, 5_000)
            for _ in range(count):
                threat_id += rng.randint(1, 4)
                last = now - rng.randint(60_000, max(60_000, days * _DAY_MS))
                first = last - (0 if rng.random() < 0.3 else rng.randint(0, 3 * _DAY_MS))
                self._live[kind, threat_id] = _Dates(first, last)
            self._next_id[kind] = threat_id + 1
        initial = sorted((dates.last, kind, threat_id) for (kind, threat_id), dates in self._live.items())
        for last, kind, threat_id in initial:
            self._append(Change(kind, threat_id, last, False))
            self._prerender((kind, threat_id))

    # -- changelog and positions (call with the lock held) --

    def _position_name(self, count: int) -> str:
        return str(uuid.uuid5(self._namespace, str(count)))

    def _append(self, change: Change) -> None:
        self._changes.append(change)
        self._position_index[self._position_name(len(self._changes))] = len(self._changes)

    def _now(self) -> int:
        """Now in ms, never before the newest changelog entry (keeps the changelog sorted)."""
        return max(int(time.time() * 1000), self._changes[-1].occurred_on if self._changes else 0)

    def _prerender(self, key: Key) -> None:
        if self._documents is not None:
            self._documents[key] = self._encode(key, self._live[key])

    def _sample(self, n: int) -> list[Key]:
        return self._rng.sample(list(self._live), min(n, len(self._live)))

    # -- mutations --

    def republish(self, n: int) -> list[Key]:
        """Re-publish ``n`` random live threats now; returns their keys."""
        with self._lock:
            keys = self._sample(n)
            for key in keys:
                now = self._now()
                self._live[key].last = now
                self._append(Change(key[0], key[1], now, False))
                self._prerender(key)
            self._index = None
            return keys

    def delete(self, n: int) -> list[Key]:
        """Delete ``n`` random live threats now (they leave every search); returns their keys."""
        with self._lock:
            keys = self._sample(n)
        return self.delete_keys(keys)

    def delete_keys(self, keys: list[Key]) -> list[Key]:
        """Delete the given live threats now (they leave every search); returns their keys."""
        with self._lock:
            for key in keys:
                del self._live[key]
                if self._documents is not None:
                    del self._documents[key]
                self._append(Change(key[0], key[1], self._now(), True))
            self._index = None
            return keys

    def add(self, malware: int = 0, phish: int = 0) -> list[Key]:
        """Publish brand-new threats now; returns their keys."""
        with self._lock:
            keys = []
            for kind, count in (("malware", malware), ("phish", phish)):
                for _ in range(count):
                    key = (kind, self._next_id[kind])
                    self._next_id[kind] += self._rng.randint(1, 4)
                    now = self._now()
                    self._live[key] = _Dates(now, now)
                    self._append(Change(kind, key[1], now, False))
                    self._prerender(key)
                    keys.append(key)
            self._index = None
            return keys

    # -- reading --

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def live_ids(self) -> set[Key]:
        """The key of every live threat."""
        with self._lock:
            return set(self._live)

    def threat(self, kind: str, threat_id: int) -> dict[str, Any] | None:
        """The document of one live threat, or None if unknown or deleted."""
        with self._lock:
            dates = self._live.get((kind, threat_id))
        return None if dates is None else self._render(kind, threat_id, dates)

    def threats(self, keys: list[Key]) -> list[dict[str, Any]]:
        """The documents of the live threats among ``keys``, in that order, without duplicates."""
        with self._lock:
            found = {key: self._live[key] for key in keys if key in self._live}
        return [self._render(kind, threat_id, dates) for (kind, threat_id), dates in found.items()]

    def threats_json(self, keys: list[Key]) -> list[bytes]:
        """:meth:`threats` as JSON texts."""
        with self._lock:
            found = {key: self._live[key] for key in keys if key in self._live}
            if self._documents is not None:
                return [self._documents[key] for key in found]
        return [self._encode(key, dates) for key, dates in found.items()]

    def search(
        self, begin_ms: int, end_ms: int, kind: str, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """Threats published in ``[begin_ms, end_ms]``, both ends inclusive.

        ``kind`` is ``"all"``, ``"malware"`` or ``"phish"``. Matches are sorted by (published,
        kind, id); returns the number of matches and the documents of ``limit`` of them from
        ``offset`` on.
        """
        with self._lock:
            total, page = self._window(begin_ms, end_ms, kind, offset, limit)
        return total, [self._render(kind_, threat_id, dates) for (kind_, threat_id), dates in page.items()]

    def search_json(self, begin_ms: int, end_ms: int, kind: str, offset: int, limit: int) -> tuple[int, list[bytes]]:
        """:meth:`search` with the documents as JSON texts."""
        with self._lock:
            total, page = self._window(begin_ms, end_ms, kind, offset, limit)
            if self._documents is not None:
                return total, [self._documents[key] for key in page]
        return total, [self._encode(key, dates) for key, dates in page.items()]

    def _window(self, begin_ms: int, end_ms: int, kind: str, offset: int, limit: int) -> tuple[int, dict[Key, _Dates]]:
        index = self._sorted(kind)
        low = bisect.bisect_left(index, (begin_ms,))
        high = max(low, bisect.bisect_left(index, (end_ms + 1,)))
        page = {
            (kind_, threat_id): self._live[kind_, threat_id]
            for _, kind_, threat_id in index[low + offset : min(high, low + offset + limit)]
        }
        return high - low, page

    def _sorted(self, kind: str) -> list[tuple[int, str, int]]:
        if self._index is None:
            everything = sorted(
                (dates.last, kind_, threat_id) for (kind_, threat_id), dates in self._live.items()
            )
            self._index = {"all": everything}
            for kind_ in KINDS:
                self._index[kind_] = [entry for entry in everything if entry[1] == kind_]
        return self._index[kind]

    def _render(self, kind: str, threat_id: int, dates: _Dates) -> dict[str, Any]:
        if kind == "malware":
            return render_malware(self.seed, threat_id, dates.first, dates.last, self.profile)
        return render_phish(self.seed, threat_id, dates.first, dates.last, self.profile)

    def _encode(self, key: Key, dates: _Dates) -> bytes:
        return json.dumps(self._render(*key, dates), separators=(",", ":")).encode()

    def updates_since(self, timestamp_ms: int, limit: int) -> tuple[list[Change], str]:
        """Up to ``limit`` changes with occurredOn > ``timestamp_ms``, and the position after them."""
        with self._lock:
            start = bisect.bisect_right(self._changes, timestamp_ms, key=_occurred_on)
            return self._page(start, limit)

    def updates_after(self, position: str, limit: int) -> tuple[list[Change], str]:
        """Up to ``limit`` changes after ``position``, and the position after them.

        Raises UnknownPosition if ``position`` was never handed out by this dataset.
        """
        try:
            name = str(uuid.UUID(position))
        except ValueError:
            raise UnknownPosition(position) from None
        with self._lock:
            if name not in self._position_index:
                raise UnknownPosition(position)
            return self._page(self._position_index[name], limit)

    def updates_end(self) -> str:
        """The position after the newest change."""
        with self._lock:
            return self._position_name(len(self._changes))

    def _page(self, start: int, limit: int) -> tuple[list[Change], str]:
        changes = self._changes[start : start + limit]
        return changes, self._position_name(start + len(changes))


def _occurred_on(change: Change) -> int:
    return change.occurred_on
