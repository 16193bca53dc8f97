"""Decoding a JSON document while keeping the source text of each element of one array in it.

A search answer carries up to 100 threats, and the sync keeps each threat's JSON text as
received (the SQLite store's ``json`` column). Encoding every decoded threat again would cost
about as much as decoding it. :func:`decode_keeping` instead walks the objects on the way to
the array and decodes the array's elements one by one with the standard library's C scanner
(``json.JSONDecoder.raw_decode``), noting where each element begins and ends: the texts come
for free.
"""

from __future__ import annotations

import json
import re
from typing import Any

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def decode_keeping(text: str, path: tuple[str, ...]) -> tuple[Any, list[str]]:
    """The document ``text`` decoded, and the text of each element of the array at ``path``.

    ``path`` names the object members leading to the array, e.g. ``("data", "threats")``.
    The texts are those of the array the decoded document holds (a member given twice: the
    last one counts, as in :func:`json.loads`); none when there is no array there. Raises
    ValueError (``json.JSONDecodeError``) when ``text`` is not one JSON document.
    """
    texts: list[str] = []
    value, end = _value(text, _skip(text, 0), path, texts)
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value, texts


def _skip(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()


def _value(text: str, at: int, path: tuple[str, ...], texts: list[str]) -> tuple[Any, int]:
    if not path and text.startswith("[", at):
        return _array(text, at, texts)
    if path and text.startswith("{", at):
        return _object(text, at, path, texts)
    return _DECODER.raw_decode(text, at)


def _object(text: str, at: int, path: tuple[str, ...], texts: list[str]) -> tuple[dict[str, Any], int]:
    members: dict[str, Any] = {}
    at = _skip(text, at + 1)
    if text.startswith("}", at):
        return members, at + 1
    while True:
        if not text.startswith('"', at):
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
        key, at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if not text.startswith(":", at):
            raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
        at = _skip(text, at + 1)
        if key == path[0]:
            texts.clear()
            members[key], at = _value(text, at, path[1:], texts)
        else:
            members[key], at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text.startswith("}", at):
            return members, at + 1
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _skip(text, at + 1)


def _array(text: str, at: int, texts: list[str]) -> tuple[list[Any], int]:
    items: list[Any] = []
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return items, at + 1
    while True:
        item, end = _DECODER.raw_decode(text, at)
        items.append(item)
        texts.append(text[at:end])
        at = _skip(text, end)
        if text.startswith("]", at):
            return items, at + 1
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _skip(text, at + 1)
