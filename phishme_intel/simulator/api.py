"""The API's answers, as pure functions of the dataset and the request (see docs/api.rst).

Paths here are relative to ``/apiv1``; authentication and transport live in ``server.py``.
Errors are ``{"success": false, "status": <message>}`` with a 4xx status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dataset import KINDS, Dataset, UnknownPosition
from .formats import FORMATS, render_format
from .threats import FEEDS

Params = dict[str, list[str]]

#: Time stamps above this are milliseconds, which the real server silently finds nothing for.
MS_THRESHOLD = 10**11
#: ``resultsPerPage`` when the request has none.
DEFAULT_PER_PAGE = 10
_INTEGER = re.compile(r"-?[0-9]+")
_THREAT_ID = re.compile(r"([mp])_([0-9]+)")


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """An answer carrying ``payload`` as JSON."""
    return Answer(status, json.dumps(payload, separators=(",", ":")).encode(), headers=headers)


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    """An API error answer."""
    return json_answer(status, {"success": False, "status": message}, headers)


def first_param(params: Params, name: str) -> str | None:
    """The first value of parameter ``name``, or None."""
    values = params.get(name)
    return values[0] if values else None


class BadRequest(Exception):
    """The request's parameters are wrong: answered with 400."""


def _int(params: Params, name: str, default: int | None = None) -> int:
    value = first_param(params, name)
    if value is None or value == "":
        if default is None:
            raise BadRequest(f"{name} is required")
        return default
    if not _INTEGER.fullmatch(value.strip()):
        raise BadRequest(f"{name} must be an integer")
    return int(value)


def _page(page: int, per_page: int, total: int, threats: list[bytes]) -> Answer:
    """A search answer around the threats' JSON texts (joined as they are, not encoded again)."""
    counts = json.dumps(
        {
            "currentPage": page,
            "totalPages": -(-total // per_page),
            "totalElements": total,
            "currentElements": len(threats),
        },
        separators=(",", ":"),
    ).encode()
    return Answer(200, b'{"success":true,"data":{"page":' + counts + b',"threats":[' + b",".join(threats) + b"]}}")


class Api:
    """Answers API requests from one dataset."""

    def __init__(self, dataset: Dataset, updates_page_size: int = 1000) -> None:
        self.dataset = dataset
        self.updates_page_size = updates_page_size
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = [
            ("GET", re.compile(r"/feed/?"), self._feed),
            ("POST", re.compile(r"/threat/search/?"), self._search),
            ("POST", re.compile(r"/threat/updates/?"), self._updates),
            ("GET", re.compile(r"/threat/(malware|phish)/([0-9]+)/?"), self._threat),
            ("GET", re.compile(rf"/t3/(malware|phish)/([0-9]+)/({'|'.join(FORMATS)})/?"), self._format),
        ]

    def answer(self, method: str, path: str, params: Params) -> Answer:
        """The answer to ``method path`` (path without ``/apiv1``) with ``params``."""
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != route_method:
                return error(405, f"method {method} not allowed", (("Allow", route_method),))
            try:
                return handler(params, *match.groups())
            except BadRequest as exc:
                return error(400, str(exc))
        return error(404, "not found")

    def _feed(self, params: Params) -> Answer:
        return json_answer(200, {"success": True, "data": FEEDS})

    def _search(self, params: Params) -> Answer:
        """Window search or search by id.

        A window is ``beginTimestamp``..``endTimestamp`` (epoch seconds) and includes both
        ends: a threat matches when ``begin * 1000 <= published <= end * 1000`` (published in
        ms). Time stamps in milliseconds match nothing. By id, ``threatId`` repeats, each
        ``m_<id>`` or ``p_<id>``; deleted threats are absent.
        """
        per_page = _int(params, "resultsPerPage", DEFAULT_PER_PAGE)
        if not 1 <= per_page <= 100:
            raise BadRequest("resultsPerPage must be between 1 and 100")
        page = _int(params, "page", 0)
        if page < 0:
            raise BadRequest("page must not be negative")
        ids = params.get("threatId")
        if ids:
            if len(ids) > per_page:
                raise BadRequest("more threatId values than resultsPerPage")
            found = self.dataset.threats_json([_threat_key(value) for value in ids])
            return _page(page, per_page, len(found), found[page * per_page : (page + 1) * per_page])
        begin, end = _int(params, "beginTimestamp"), _int(params, "endTimestamp")
        kind = (first_param(params, "threatType") or "all").lower()
        if kind not in ("all", *KINDS):
            raise BadRequest("threatType must be all, malware or phish")
        if max(begin, end) > MS_THRESHOLD:
            return _page(page, per_page, 0, [])
        total, threats = self.dataset.search_json(begin * 1000, end * 1000, kind, page * per_page, per_page)
        return _page(page, per_page, total, threats)

    def _updates(self, params: Params) -> Answer:
        position = first_param(params, "position")
        if position is not None:
            try:
                changes, next_position = self.dataset.updates_after(position, self.updates_page_size)
            except UnknownPosition:
                raise BadRequest(f"unknown position {position!r}") from None
        else:
            timestamp = _int(params, "timestamp")
            if timestamp > MS_THRESHOLD:
                changes, next_position = [], self.dataset.updates_end()
            else:
                changes, next_position = self.dataset.updates_since(timestamp * 1000, self.updates_page_size)
        return json_answer(
            200,
            {
                "success": True,
                "data": {
                    "changelog": [change.as_json() for change in changes],
                    "nextPosition": next_position,
                },
            },
        )

    def _threat(self, params: Params, kind: str, threat_id: str) -> Answer:
        threat = self.dataset.threat(kind, int(threat_id))
        if threat is None:
            return error(404, f"{kind} threat {threat_id} not found")
        return json_answer(200, {"success": True, "data": threat})

    def _format(self, params: Params, kind: str, threat_id: str, fmt: str) -> Answer:
        threat = self.dataset.threat(kind, int(threat_id))
        if threat is None:
            return error(404, f"{kind} threat {threat_id} not found")
        content_type, body = render_format(threat, fmt)
        return Answer(200, body, content_type)


def _threat_key(value: str) -> tuple[str, int]:
    match = _THREAT_ID.fullmatch(value.strip())
    if match is None:
        raise BadRequest(f"threatId {value!r} is not m_<id> or p_<id>")
    return ("malware" if match[1] == "m" else "phish", int(match[2]))
