"""JSON files: the contract for dated files, flat files and JSON Lines, then layout and event details."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from contract import AdapterContract, DiscardsUncommitted, deliver
from support import run_cli, sample_threats, store, write_config

from phishme_intel.adapters.json_files import JsonFilesAdapter
from phishme_intel.errors import AdapterError
from phishme_intel.models import MALWARE, ThreatRef, parse_threat
from phishme_intel.options import parse_section


def settings(base_dir, **raw):
    """The adapter's settings parsed from ``raw`` as config.ini would give them."""
    problems = []
    parsed = parse_section("integration_json_files", raw, JsonFilesAdapter.options, problems, base_dir=str(base_dir))
    assert problems == []
    return parsed


def files_held(folder):
    """The threats whose file is in ``folder`` or one level below it."""
    names = [name for _, _, files in os.walk(folder) for name in files if name.endswith(".json")]
    return {ThreatRef(name.split("_")[0], int(name.split("_")[1].removesuffix(".json"))) for name in names}


def jsonl_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def jsonl_held(path):
    """The threats a consumer of the JSON Lines holds: upserted and not deleted since."""
    held = set()
    for event in jsonl_events(path):
        ref = ThreatRef(event["threat_type"], event["threat_id"])
        (held.add if event["action"] == "upsert" else held.discard)(ref)
    return held


def jsonl_output(tmp_path):
    """(raw settings, reader) for JSON Lines events only."""
    path = tmp_path / "threats.jsonl"
    return {"threat_files": "False", "jsonl_file": str(path)}, lambda: jsonl_held(path)


@pytest.fixture(params=["dated", "flat", "jsonl"])
def output(request, tmp_path):
    """(raw settings, reader of what the destination holds) for each of the three outputs."""
    if request.param == "jsonl":
        return jsonl_output(tmp_path)
    folder = tmp_path / "json"
    return {"folder": str(folder), "layout": request.param}, lambda: files_held(folder)


@pytest.fixture
def make_adapter(output, tmp_path):
    return lambda: JsonFilesAdapter(settings(tmp_path, **output[0]))


@pytest.fixture
def held(output):
    return output[1]


@pytest.fixture(params=["folder", "jsonl_file"])
def broken_adapter(request, tmp_path):
    (tmp_path / "a-file").write_text("")
    return JsonFilesAdapter(settings(tmp_path, **{request.param: str(tmp_path / "a-file" / "below")}))


class TestJsonFilesContract(AdapterContract):
    pass


class TestJsonLinesDiscardUncommittedEvents(DiscardsUncommitted):
    """Threat files are written as threats are delivered; the JSON Lines events only at commit."""

    @pytest.fixture
    def output(self, tmp_path):
        return jsonl_output(tmp_path)


def test_dated_layout_puts_each_threat_under_its_first_published_utc_date(tmp_path):
    threats = sample_threats(malware=3, phish=2)

    deliver(JsonFilesAdapter(settings(tmp_path, folder="out")), threats)

    expected = {
        f"{dt.datetime.fromtimestamp(t.first_published / 1000, dt.timezone.utc):%Y-%m-%d}/{t.kind}_{t.id}.json"
        for t in threats
    }
    found = {os.path.relpath(os.path.join(root, name), tmp_path / "out")
             for root, _, names in os.walk(tmp_path / "out") for name in names}
    assert found == expected


def test_a_threat_file_is_the_threats_json_text_as_received_and_readable_by_others(tmp_path):
    [threat] = sample_threats(malware=1, phish=0)

    deliver(JsonFilesAdapter(settings(tmp_path, folder="out", layout="flat")), [threat])

    path = tmp_path / "out" / f"malware_{threat.id}.json"
    text = path.read_text()
    assert json.loads(text) == threat.raw
    assert text == threat.json + "\n"
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_redelivery_rewrites_the_file_atomically_and_leaves_no_temporary_files(tmp_path):
    [threat] = sample_threats(malware=1, phish=0)
    adapter = lambda: JsonFilesAdapter(settings(tmp_path, folder="out", layout="flat"))  # noqa: E731
    deliver(adapter(), [threat])
    old_inode = os.stat(tmp_path / "out" / f"malware_{threat.id}.json").st_ino
    threat = parse_threat({**threat.raw, "label": "Re-published"})

    deliver(adapter(), [threat])

    path = tmp_path / "out" / f"malware_{threat.id}.json"
    assert json.loads(path.read_text())["label"] == "Re-published"
    assert os.stat(path).st_ino != old_inode, "replaced by rename, not rewritten in place"
    assert os.listdir(tmp_path / "out") == [path.name]


def test_withdrawal_finds_the_file_whichever_layout_wrote_it(tmp_path):
    threats = sample_threats(malware=2, phish=0)
    deliver(JsonFilesAdapter(settings(tmp_path, folder="out", layout="dated")), threats[:1])
    deliver(JsonFilesAdapter(settings(tmp_path, folder="out", layout="flat")), threats[1:])

    deliver(JsonFilesAdapter(settings(tmp_path, folder="out", layout="flat")), withdrawn=[t.ref for t in threats])

    assert files_held(tmp_path / "out") == set()


def test_jsonl_has_one_upsert_or_delete_event_per_line(tmp_path):
    threats = sample_threats(malware=1, phish=1)
    path = tmp_path / "threats.jsonl"
    adapter = lambda: JsonFilesAdapter(settings(tmp_path, threat_files="False", jsonl_file=str(path)))  # noqa: E731

    deliver(adapter(), threats)
    deliver(adapter(), withdrawn=[threats[0].ref])

    events = jsonl_events(path)
    assert [(e["action"], e["threat_type"], e["threat_id"]) for e in events] == [
        ("upsert", threats[0].kind, threats[0].id), ("upsert", threats[1].kind, threats[1].id),
        ("delete", threats[0].kind, threats[0].id),
    ]
    assert events[0]["threat"] == threats[0].raw and "threat" not in events[2]
    assert all(e["time"].endswith("Z") for e in events)


def test_an_upsert_event_holds_the_threats_json_text_as_received_on_one_line(tmp_path):
    first, second = sample_threats(malware=1, phish=1)
    spaced = parse_threat(first.raw, json.dumps(first.raw, separators=(", ", ": ")))
    pretty = parse_threat(second.raw, json.dumps(second.raw, indent=2))  # line breaks between its tokens
    path = tmp_path / "threats.jsonl"

    deliver(JsonFilesAdapter(settings(tmp_path, threat_files="False", jsonl_file=str(path))), [spaced, pretty])

    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 3 and lines[2] == b""
    assert lines[0].endswith(b',"threat":' + spaced.json.encode() + b"}")
    assert [json.loads(line)["threat"] for line in lines[:2]] == [spaced.raw, pretty.raw]


def test_jsonl_appends_nothing_for_a_run_that_does_not_commit(tmp_path):
    path = tmp_path / "threats.jsonl"

    deliver(JsonFilesAdapter(settings(tmp_path, jsonl_file=str(path), threat_files="False")), sample_threats(),
            commit=False)

    assert not path.exists()


def test_jsonl_cuts_off_a_line_a_crash_left_unfinished_before_appending(tmp_path):
    path = tmp_path / "threats.jsonl"
    path.write_text('{"action":"delete","threat_type":"malware","threat_id":1}\n{"action":"ups')

    deliver(JsonFilesAdapter(settings(tmp_path, jsonl_file=str(path), threat_files="False")),
            withdrawn=[ThreatRef(MALWARE, 2)])

    assert [e["threat_id"] for e in jsonl_events(path)] == [1, 2]


def test_a_full_disk_is_a_clear_error_and_adds_nothing(tmp_path):
    adapter = JsonFilesAdapter(settings(tmp_path, jsonl_file="/dev/full", threat_files="False"))

    with pytest.raises(AdapterError, match="adapter json_files: cannot append to /dev/full: No space left on device"):
        deliver(adapter, sample_threats(malware=1, phish=0))


def test_bad_settings_are_config_errors(tmp_path, simulator):
    (tmp_path / "a-file").write_text("")
    config = write_config(tmp_path, simulator.url, integration_json_files={
        "use": "True", "folder": "a-file", "layout": "by-month", "jsonl_file": "missing/threats.jsonl",
    })

    result = run_cli(config, "--check")

    assert result.returncode == 78
    assert f"[integration_json_files] folder: {tmp_path / 'a-file'} is not a folder" in result.stderr
    assert "[integration_json_files] layout: must be one of dated, flat, not 'by-month'" in result.stderr
    assert f"[integration_json_files] jsonl_file: the folder {tmp_path / 'missing'} does not exist" in result.stderr


def test_a_run_writes_every_threat_and_the_next_removes_the_deleted_ones(tmp_path, simulator, dataset):
    config = write_config(tmp_path, simulator.url, integration_json_files={
        "use": "True", "folder": "json", "jsonl_file": "threats.jsonl",
    })
    assert run_cli(config).returncode == 0
    deleted = set(dataset.delete(5))
    assert deleted <= files_held(tmp_path / "json")

    assert run_cli(config).returncode == 0

    live = dataset.live_ids()
    assert files_held(tmp_path / "json") == live == store(tmp_path / "phishme_intel.sqlite3")["threats"]
    assert jsonl_held(tmp_path / "threats.jsonl") == live
    deletions = {(e["threat_type"], e["threat_id"]) for e in jsonl_events(tmp_path / "threats.jsonl")
                 if e["action"] == "delete"}
    assert deletions == deleted
