"""Decoding a search answer while keeping each threat's JSON text as received."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import run_cli

from phishme_intel.client.jsontext import decode_answer, decode_keeping, nesting
from phishme_intel.models.limits import MAX_DEPTH, Unreadable

PATH = ("data", "threats")
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
#: How a server may space its JSON: compactly (as orjson writes it), with spaces, indented.
SPACINGS = [{"separators": (",", ":")}, {}, {"indent": 2}]


@given(threats=st.lists(values, max_size=5), other=values, indent=st.sampled_from([None, 2]),
       ascii_only=st.booleans())
def test_decoding_gives_what_json_loads_gives_and_each_threats_own_text(threats, other, indent, ascii_only):
    document = {"success": True, "data": {"page": {"totalPages": 1}, "threats": threats, "other": other}}
    text = json.dumps(document, indent=indent, ensure_ascii=ascii_only)

    decoded, texts = decode_keeping(text, PATH)

    assert decoded == json.loads(text)
    assert [json.loads(item) for item in texts] == threats
    assert all(item == item.strip() for item in texts)


def test_the_text_is_exactly_what_the_server_sent():
    text = '{ "data" : { "threats" : [ {"id": 1,  "label":"caf\\u00e9"} , {"id":2} ] } , "success" : true }'

    decoded, texts = decode_keeping(text, PATH)

    assert texts == ['{"id": 1,  "label":"caf\\u00e9"}', '{"id":2}']
    assert decoded["data"]["threats"][0]["label"] == "café"


def test_a_member_given_twice_counts_once_the_last_time_as_in_json_loads():
    text = '{"data": {"threats": [1, 2]}, "data": {"threats": [3]}}'

    decoded, texts = decode_keeping(text, PATH)

    assert decoded == json.loads(text)
    assert texts == ["3"]


@pytest.mark.parametrize("text", [
    '{"data": {"threats": 5}}',
    '{"data": [1, 2]}',
    '{"success": true}',
    "[]",
])
def test_no_array_at_the_path_gives_no_texts(text):
    assert decode_keeping(text, PATH) == (json.loads(text), [])


@pytest.mark.parametrize("text", [
    "",
    '{"data": {"threats": [1, 2}}',
    '{"data": {"threats": [1 2]}}',
    '{"data" {"threats": []}}',
    "{data: 1}",
    '{"data": {"threats": []}} extra',
    '{"data": {"threats": [{"id": 1}, ]}}',
])
def test_text_that_is_not_one_json_document_is_a_value_error(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        decode_keeping(text, PATH)
    with pytest.raises(ValueError):
        decode_answer(text.encode(), PATH)


@pytest.mark.parametrize("text", [" ", "1],[2", '{"data": {"threats": []}}],[1', "[1]]", "[[1]"])
def test_text_that_parses_only_inside_extra_brackets_is_not_one_json_document_either(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        decode_answer(text.encode(), PATH)


def test_the_store_keeps_each_threats_json_exactly_as_the_api_sent_it(config, dataset):
    sent = {key: text.decode() for key, text in zip(
        sorted(dataset.live_ids()), dataset.threats_json(sorted(dataset.live_ids())), strict=True)}
    assert any("\\u" in text for text in sent.values())  # some escapes the store must not re-encode

    assert run_cli(config).returncode == 0

    with sqlite3.connect(config.parent / "phishme_intel.sqlite3") as db:
        rows = db.execute("SELECT threat_type, threat_id, json FROM threats")
        stored = {(kind, tid): text for kind, tid, text in rows}
    assert stored == sent


@given(threats=st.lists(values, max_size=5), other=values, spacing=st.sampled_from(SPACINGS),
       ascii_only=st.booleans(), bom=st.booleans())
def test_the_answer_decoded_with_orjson_is_what_the_careful_way_gives_types_and_texts_alike(
    threats, other, spacing, ascii_only, bom
):
    document = {"success": True, "data": {"page": {"totalPages": 1}, "threats": threats, "other": other}}
    text = json.dumps(document, ensure_ascii=ascii_only, **spacing)
    content = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass")

    decoded, texts = decode_answer(content, PATH)

    assert repr((decoded, texts)) == repr(decode_keeping(text, PATH))  # repr: 1, 1.0 and True differ


def test_a_number_orjson_would_make_a_float_stays_the_integer_sent_and_its_threat_the_text_sent():
    content = b'{"data":{"threats":[{"id":1,"seen":18446744073709551616},{"id":2}]}}'

    decoded, texts = decode_answer(content, PATH)

    assert decoded["data"]["threats"] == [{"id": 1, "seen": 18446744073709551616}, {"id": 2}]
    assert isinstance(decoded["data"]["threats"][0]["seen"], int)
    assert texts == ['{"id":1,"seen":18446744073709551616}', '{"id":2}']


def test_a_threat_orjson_refuses_costs_no_other_threat_its_value_or_its_text():
    content = b'{"data":{"threats":[{"id":1,"label":"\\ud800"},{"id":2,"n":1e999},{"id":3}]}}'

    decoded, texts = decode_answer(content, PATH)

    assert decoded["data"]["threats"] == [{"id": 1, "label": "\ud800"}, {"id": 2, "n": float("inf")}, {"id": 3}]
    assert texts == ['{"id":1,"label":"\\ud800"}', '{"id":2,"n":1e999}', '{"id":3}']


@pytest.mark.parametrize("deepest", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 200, 1_100])
@pytest.mark.parametrize("space", ["", " "])
def test_a_threat_nested_deeper_than_max_depth_is_unreadable_and_costs_the_others_nothing(deepest, space):
    sent = [f'{{"id":1,"x":{nested(MAX_DEPTH - 1)}}}', f'{{"id":2,"x":{nested(deepest - 1)}}}', '{"id":3}']
    text = f'{{"success":true,"data":{{"threats":[{f",{space}".join(sent)}]}}}}'

    decoded, texts = decode_answer(text.encode(), PATH)

    threats = decoded["data"]["threats"]
    assert texts == sent
    assert threats[0] == json.loads(sent[0]) and threats[2] == {"id": 3}
    if deepest > MAX_DEPTH:
        assert threats[1] == Unreadable(f"nested deeper than {MAX_DEPTH} levels")
    else:
        assert threats[1] == json.loads(sent[1])
    assert repr((decoded, texts)) == repr(decode_keeping(text, PATH, nesting(text.encode())))


def nested(depth):
    """The JSON text of a value nested ``depth`` levels deep, arrays and objects in turn."""
    return "".join('[' if level % 2 else '{"k":' for level in range(depth)) + '"end"' + "".join(
        ']' if level % 2 else '}' for level in reversed(range(depth)))


@given(value=values, spacing=st.sampled_from(SPACINGS), ascii_only=st.booleans())
def test_nesting_is_how_deep_objects_and_arrays_nest_whatever_the_strings_hold(value, spacing, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only, **spacing)

    assert nesting(text.encode("utf-8", "surrogatepass")) == depth(value)


@pytest.mark.parametrize("value", [
    ["[", "]]", {"}": "{{"}],
    ['\\"[', ["\\"], "\\\\", '"'],
    [[[["a\\u00e9"]]], "\u00e9]"],
])
def test_nesting_is_not_misled_by_brackets_quotes_and_escapes_in_strings(value):
    for ascii_only in (True, False):
        assert nesting(json.dumps(value, ensure_ascii=ascii_only).encode()) == depth(value)


def depth(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0
