"""Decoding a JSON document while keeping the source text of each element of one array in it.

A search answer carries up to 100 threats, and the sync keeps each threat's JSON text as
received (the SQLite store's ``json`` column). Encoding every decoded threat again would cost
about as much as decoding it, and would not give the text received. :func:`decode_keeping`
instead walks the objects on the way to the array and decodes the array's elements one by one
with the standard library's C scanner (``json.JSONDecoder.raw_decode``), noting where each
element begins and ends: the texts come for free.

:func:`decode_answer` is the common case made fast: orjson decodes the whole answer, and an
element whose text as received is orjson's own compact encoding of it (no spaces, no escapes
orjson would not write, no number it would spell otherwise: nearly every threat) is taken as
orjson decoded it, its text being that encoding; the walk above then only checks each such text
in place and decodes the others (the values of the document are always those
:func:`json.loads` gives). orjson refuses a document nested deeper than a fixed limit (1,024
levels), so the answer is handed to it inside as many extra arrays as make that limit fall
where ours does: the answer's depth is checked in the same pass. An answer orjson refuses (a
lone surrogate, a byte order mark, ``NaN``, a number past a double) or one nested too deep goes
the careful way, where one bad threat still spoils no other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import orjson

from ..models.limits import MAX_DEPTH, Unreadable

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_ESCAPED_QUOTE = re.compile(rb'\\"')
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]|[^"\[\]{}]+', re.S)
#: One element orjson decoded: its compact encoding (orjson's) and its value.
Known = tuple[str, Any]


def decode_answer(content: bytes, path: tuple[str, ...]) -> tuple[Any, list[str]]:
    """:func:`decode_keeping` of the UTF-8 document ``content``, orjson doing most of the work.

    Raises UnicodeDecodeError when ``content`` is not UTF-8 (a byte order mark may open it) and
    ValueError when it is not one JSON document. The decoded document and the texts are those
    :func:`decode_keeping` gives.
    """
    known = _orjson_elements(content, path)  # first: the padded copy it makes is gone before the text is made
    text = content.decode("utf-8-sig")
    if known is None:
        return decode_keeping(text, path, nesting(content))
    return decode_keeping(text, path, 0, known)


def decode_keeping(
    text: str, path: tuple[str, ...], nested: int = 0, known: Sequence[Known | None] | None = None
) -> tuple[Any, list[str]]:
    """The document ``text`` decoded, and the text of each element of the array at ``path``.

    ``path`` names the object members leading to the array, e.g. ``("data", "threats")``.
    The texts are those of the array the decoded document holds (a member given twice: the
    last one counts, as in :func:`json.loads`); none when there is no array there. Raises
    ValueError (``json.JSONDecodeError``) when ``text`` is not one JSON document.

    An element the decoder cannot take (a number of more than 4,300 digits, nesting past the
    interpreter's recursion limit) and, when the document nests ``nested`` levels (see
    :func:`nesting`) and that is more than :data:`~.models.limits.MAX_DEPTH` below the
    array, an element nested deeper than that, is an :class:`~.models.limits.Unreadable` in
    the decoded array: one bad element never spoils the others.

    ``known``, when given, holds for each element of the array (by its place) a :data:`Known`
    or None: an object or array whose text in ``text`` is that encoding is taken as it is,
    without decoding it again.
    """
    texts: list[str] = []
    value, end = _value(text, _skip(text, 0), path, texts, known or ())
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    if nested > MAX_DEPTH + len(path):
        _mark_too_deep(_at(value, path), texts)
    return value, texts


def nesting(data: bytes) -> int:
    """How deep objects and arrays nest in the JSON document ``data`` (0 for a scalar).

    Bytes operations only (no per-character Python loop): escaped quotes go (and escaped
    backslashes before them), then everything but quotes and brackets; the strings, now ``""``
    unless they hold brackets, go; every bracket becomes ``[``/``]``, and each pass removes
    the innermost pairs.
    """
    if _ESCAPED_QUOTE.search(data):  # an escaped quote (or an escaped backslash before a closing one)
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(_BRACKETS, _NOT_STRUCTURE)
    brackets = structure.replace(b'""', b"")
    if b'"' in brackets:  # a string holds a bracket: strings are what lies between two quotes
        brackets = b"".join(structure.split(b'"')[::2])
    depth = 0
    while brackets:
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break  # unbalanced: the decoder reports it
        brackets, depth = shorter, depth + 1
    return depth


def _orjson_elements(content: bytes, path: tuple[str, ...]) -> list[Known | None] | None:
    """Each element of the array at ``path`` as orjson decodes ``content`` (none if there is no array).

    None when orjson refuses ``content`` or an element nests deeper than :data:`MAX_DEPTH`
    (the objects of ``path``, the array, then the element): wrapped in ``padding`` arrays, such
    a document passes orjson's limit.
    """
    padding = _ORJSON_DEPTH - (len(path) + 1 + MAX_DEPTH)
    if padding < 1:
        return None
    try:
        value = orjson.loads(b"".join((b"[" * padding, content, b"]" * padding)))
    except orjson.JSONDecodeError:
        return None
    for _ in range(padding):
        if len(value) != 1:  # e.g. b"1],[2" or b"": not one document, though wrapped it parses
            return None
        value = value[0]
    items = _at(value, path)
    if not isinstance(items, list):
        return []
    return [(orjson.dumps(item).decode(), item) if isinstance(item, dict | list) else None for item in items]


def _orjson_depth(ceiling: int = 4096) -> int:
    """The deepest nesting orjson decodes (1,024 since orjson 3.9.15); 0 if it decodes ``ceiling`` levels."""
    def decodes(depth: int) -> bool:
        try:
            orjson.loads(b"[" * depth + b"]" * depth)
        except orjson.JSONDecodeError:
            return False
        return True

    if decodes(ceiling):
        return 0
    low, high = 1, ceiling
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if decodes(middle) else (low, middle)
    return low


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _mark_too_deep(items: Any, texts: list[str]) -> None:
    if not isinstance(items, list) or len(items) != len(texts):
        return
    for index, text in enumerate(texts):
        if nesting(text.encode("utf-8", "surrogatepass")) > MAX_DEPTH:
            items[index] = Unreadable(f"nested deeper than {MAX_DEPTH} levels")


def _skip(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()


def _value(
    text: str, at: int, path: tuple[str, ...], texts: list[str], known: Sequence[Known | None]
) -> tuple[Any, int]:
    if not path and text.startswith("[", at):
        return _array(text, at, texts, known)
    if path and text.startswith("{", at):
        return _object(text, at, path, texts, known)
    return _DECODER.raw_decode(text, at)


def _object(
    text: str, at: int, path: tuple[str, ...], texts: list[str], known: Sequence[Known | None]
) -> tuple[dict[str, Any], int]:
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
            members[key], at = _value(text, at, path[1:], texts, known)
        else:
            members[key], at = _DECODER.raw_decode(text, at)
        at = _skip(text, at)
        if text.startswith("}", at):
            return members, at + 1
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _skip(text, at + 1)


def _array(text: str, at: int, texts: list[str], known: Sequence[Known | None]) -> tuple[list[Any], int]:
    items: list[Any] = []
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return items, at + 1
    while True:
        given = known[len(items)] if len(items) < len(known) else None
        if given is not None and text.startswith(given[0], at):  # an object or array: it ends where its text does
            items.append(given[1])
            texts.append(given[0])
            at = _skip(text, at + len(given[0]))
        else:
            item, end = _element(text, at)
            items.append(item)
            texts.append(text[at:end])
            at = _skip(text, end)
        if text.startswith("]", at):
            return items, at + 1
        if not text.startswith(",", at):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        at = _skip(text, at + 1)


def _element(text: str, at: int) -> tuple[Any, int]:
    """The array element at ``at`` and where it ends; an Unreadable if the decoder cannot take it."""
    try:
        return _DECODER.raw_decode(text, at)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        return Unreadable("nested deeper than the decoder can follow"), _end(text, at)
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits (sys.set_int_max_str_digits)
        return Unreadable(f"the decoder refused it ({exc})"[:200]), _end(text, at)


def _end(text: str, at: int) -> int:
    """Where the value starting at ``at`` ends: a number, or an object or array (strings and escapes understood)."""
    if text[at] not in "[{":
        number = _NUMBER.match(text, at)
        if number is None:
            raise json.JSONDecodeError("Expecting value", text, at)
        return number.end()
    depth = 0
    for token in _TOKEN.finditer(text, at):
        first = token.group()[0]
        if first in "[{":
            depth += 1
        elif first in "]}":
            depth -= 1
        if depth <= 0:
            return token.end()
    raise json.JSONDecodeError("Unterminated element", text, at)


#: How deep orjson nests (0: without a limit, so :func:`decode_answer` always goes the careful way).
_ORJSON_DEPTH = _orjson_depth()
