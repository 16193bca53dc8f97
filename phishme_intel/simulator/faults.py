"""Injected failures for the simulator: a thread-safe queue of faults.

A fault applies to the next ``times`` API requests whose path (without ``/apiv1``) starts
with its ``path`` (``None``: any path). Kinds:

- ``"429"``: status 429, with ``Retry-After`` when ``retry_after`` is given;
- ``"500"``, ``"502"``, ``"503"``: that status (502 with an HTML body, as a proxy sends);
- ``"outage"``: 503 with a maintenance HTML page (and ``Retry-After`` if given);
- ``"reset"``: the socket is closed abruptly (RST) without an answer;
- ``"truncate"``: headers announce the full body, half of it is sent, then the socket closes;
- ``"stall"``: the answer is sent normally but only after ``seconds``;
- ``"invalid_json"``: status 200 with a body that is not JSON;
- ``"success_false"``: status 200 with ``{"success": false, "status": "error"}``;
- ``"drip"``: the answer is sent one byte every ``seconds``;
- ``"oversized"``: the answer is padded to ``size`` bytes;
- a hostile answer made from the normal one (:mod:`.hostile`): ``"poison_threat"``,
  ``"deep_threat"``, ``"deep_page"``, ``"lying_totals"``, ``"looping_position"``,
  ``"endless_changelog"``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .api import Answer, Params, error
from .hostile import TRANSFORMS, oversized

KINDS = frozenset(
    {"429", "500", "502", "503", "outage", "reset", "truncate", "stall", "invalid_json", "success_false",
     "drip", "oversized", *TRANSFORMS}
)

_HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
_HTML_OUTAGE = (
    b"<html><body><h1>ThreatHQ is down for maintenance</h1><p>Please try again later.</p></body></html>"
)


@dataclass
class Fault:
    """One queued fault; ``times`` counts the requests it still applies to, after letting
    ``after`` matching requests through untouched."""

    kind: str
    times: int = 1
    path: str | None = None
    retry_after: int | None = None
    seconds: float | None = None
    after: int = 0
    size: int | None = None

    def matches(self, path: str) -> bool:
        """Whether this fault applies to a request for ``path``."""
        return self.path is None or path.startswith(self.path)

    def canned(self) -> Answer | None:
        """The answer sent instead of the normal one, or None for transport-level kinds."""
        retry = (("Retry-After", str(self.retry_after)),) if self.retry_after is not None else ()
        if self.kind == "429":
            return error(429, "rate limit exceeded", retry)
        if self.kind == "500":
            return error(500, "internal server error")
        if self.kind == "502":
            return Answer(502, _HTML_502, "text/html")
        if self.kind == "503":
            return error(503, "service unavailable")
        if self.kind == "outage":
            return Answer(503, _HTML_OUTAGE, "text/html", retry)
        if self.kind == "invalid_json":
            return Answer(200, b'{"success": true, "data": {"threats": [')
        if self.kind == "success_false":
            return error(200, "error")
        return None

    def transform(self, answer: Answer, params: Params) -> Answer:
        """What this fault makes of the normal ``answer`` to a request with ``params``."""
        if self.kind in TRANSFORMS:
            return TRANSFORMS[self.kind](answer, params)
        if self.kind == "oversized":
            return oversized(answer, self.size or 0)
        return answer


class FaultQueue:
    """Faults waiting to be applied, oldest first; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        kind: str,
        times: int = 1,
        path: str | None = None,
        retry_after: int | None = None,
        seconds: float | None = None,
        after: int = 0,
        size: int | None = None,
    ) -> Fault:
        """Queue a fault; raises ValueError for an unknown kind or bad numbers."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")
        if times < 1 or after < 0:
            raise ValueError("times must be at least 1 and after at least 0")
        if kind in ("stall", "drip") and (seconds is None or seconds < 0):
            raise ValueError(f"a {kind} needs seconds >= 0")
        if kind == "oversized" and (size is None or size < 1):
            raise ValueError("an oversized answer needs size >= 1")
        fault = Fault(kind, times, path, retry_after, seconds, after, size)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, path: str) -> Fault | None:
        """The oldest fault matching ``path``, counting one use of it; None if none applies."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(path) and fault.after > 0:
                    fault.after -= 1
                elif fault.matches(path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)
