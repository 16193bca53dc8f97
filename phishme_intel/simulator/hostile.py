"""Answers of a broken or hostile API, made from the answer the simulator would have sent.

Each function takes the normal answer (and the request's parameters) and returns what a
misbehaving server sends instead; :mod:`.faults` names them as fault kinds:

- ``poison_threat``: the search page also holds a malware threat published in the year
  33658 (``firstPublished`` = ``lastPublished`` = 10**15 ms);
- ``deep_threat``: the search page also holds a threat nested 1,100 levels deep;
- ``deep_page``: the whole answer is nested 1,100 levels deep;
- ``lying_totals``: the search page claims ``totalPages`` 1,000,000,000;
- ``looping_position``: the updates answer hands back the position it was asked for, with
  changes, for ever;
- ``endless_changelog``: the updates answer hands a new position with 100 changes, for ever;
- ``oversized``: the answer is padded (a JSON member) to ``size`` bytes;
- ``invalid_utf8``: the search page also holds a threat whose label is not UTF-8;
- ``huge_number``: the search page also holds a threat with a 5,000-digit number;
- ``escape_page``: an HTTP 410 error page full of terminal escape sequences, 2 KB long.

``drip`` (the answer sent a byte at a time) is done by the server, which sends the body.
"""

from __future__ import annotations

import json
import re
import uuid

from .api import Answer, Params, first_param

POISON_ID = 990_001
DEEP_ID = 990_002
DEPTH = 1_100
_TIME = 1_700_000_000_000
POISON = {
    "threatType": "MALWARE", "id": POISON_ID, "label": "published in the year 33658",
    "firstPublished": 10**15, "lastPublished": 10**15,
    "blockSet": [{"blockType": "Domain Name", "impact": "Major", "role": "C2", "data_1": "poison.example"}],
}
_DEEP = (
    f'{{"threatType":"MALWARE","id":{DEEP_ID},"firstPublished":{_TIME},"lastPublished":{_TIME},"x":'
    + "[" * DEPTH + "]" * DEPTH + "}"
).encode()
_THREATS = re.compile(rb'"threats":\[')
_TOTAL_PAGES = re.compile(rb'"totalPages":[0-9]+')


def with_threat(answer: Answer, threat: bytes) -> Answer:
    """The search answer with ``threat`` (JSON) first in its threats array."""
    def insert(match: re.Match[bytes]) -> bytes:
        rest = answer.body[match.end():match.end() + 1]
        return match.group() + threat + (b"" if rest == b"]" else b",")

    return Answer(answer.status, _THREATS.sub(insert, answer.body, count=1), answer.content_type, answer.headers)


def poison_threat(answer: Answer, params: Params) -> Answer:
    return with_threat(answer, json.dumps(POISON).encode())


def deep_threat(answer: Answer, params: Params) -> Answer:
    return with_threat(answer, _DEEP)


def deep_page(answer: Answer, params: Params) -> Answer:
    return Answer(200, b'{"success":true,"data":' + b"[" * DEPTH + b"]" * DEPTH + b"}")


def lying_totals(answer: Answer, params: Params) -> Answer:
    body = _TOTAL_PAGES.sub(b'"totalPages":1000000000', answer.body, count=1)
    return Answer(answer.status, body, answer.content_type, answer.headers)


def _changes(count: int) -> list[dict[str, object]]:
    """Changes to threats that do not exist: fetching them finds nothing, so nothing is delivered."""
    return [{"threatId": 980_000 + n, "threatType": "malware", "occurredOn": _TIME, "deleted": False}
            for n in range(count)]


def looping_position(answer: Answer, params: Params) -> Answer:
    position = first_param(params, "position") or str(uuid.UUID(int=1))
    return _updates(_changes(10), position)


def endless_changelog(answer: Answer, params: Params) -> Answer:
    return _updates(_changes(100), str(uuid.uuid4()))


def _updates(changelog: list[dict[str, object]], position: str) -> Answer:
    body = {"success": True, "data": {"changelog": changelog, "nextPosition": position}}
    return Answer(200, json.dumps(body).encode())


def oversized(answer: Answer, size: int) -> Answer:
    """``answer`` padded with a member ``"padding"`` to at least ``size`` bytes (still valid JSON)."""
    padding = max(0, size - len(answer.body))
    body = answer.body.replace(b"{", b'{"padding":"' + b"x" * padding + b'",', 1)
    return Answer(answer.status, body, answer.content_type, answer.headers)


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m\u202e"


def escape_page(answer: Answer, params: Params) -> Answer:
    body = f"<html><title>{ESCAPES}Bad request</title>{ESCAPES}{'.' * 2000}</html>"
    return Answer(410, body.encode(), "text/html")


def invalid_utf8(answer: Answer, params: Params) -> Answer:
    return with_threat(answer, _threat(990_003, b'"label":"caf\xe9 \xff"'))


def huge_number(answer: Answer, params: Params) -> Answer:
    return with_threat(answer, _threat(990_004, b'"score":' + b"9" * 5000))


def _threat(threat_id: int, member: bytes) -> bytes:
    return f'{{"threatType":"MALWARE","id":{threat_id},"firstPublished":{_TIME},"lastPublished":{_TIME},'.encode() + (
        member + b"}"
    )


TRANSFORMS = {
    "escape_page": escape_page, "invalid_utf8": invalid_utf8, "huge_number": huge_number,
    "poison_threat": poison_threat, "deep_threat": deep_threat, "deep_page": deep_page,
    "lying_totals": lying_totals, "looping_position": looping_position, "endless_changelog": endless_changelog,
}
