"""``[integration_json_files]``: threats as JSON files, for forwarders and scripts that read files.

Two outputs, either or both:

threat files (``threat_files = True``)
    One JSON file per threat, the threat's JSON text exactly as the API sent it, at
    ``<folder>/<YYYY-MM-DD>/<threat_type>_<id>.json`` (``layout = dated``: the UTC date the
    threat was first published) or ``<folder>/<threat_type>_<id>.json`` (``layout = flat``).
    The files of a delivery wait in hidden ``.<name>.pending`` files beside their final
    ones and replace them at :meth:`~JsonFilesAdapter.commit`, all with one file-system sync
    (see :class:`~phishme_intel.file_batch.FileBatch`); a date folder that does not exist yet
    waits as a hidden ``.<YYYY-MM-DD>.pending`` folder holding its files, which becomes it
    at the commit. A withdrawal removes the file, in whichever of the two layouts it is.
JSON Lines (``jsonl_file``)
    One event per line, appended: ``{"action": "upsert", "time": ..., "threat_type": ...,
    "threat_id": ..., "threat": {...}}`` for a delivery; for a withdrawal the same with
    ``"action": "delete"`` and without ``threat``. The events of a commit wait in memory up
    to 1 MiB, then in an unnamed temporary file (:class:`~phishme_intel.files.PendingLines`),
    and are appended at :meth:`~JsonFilesAdapter.commit` and fsynced, so a failed run appends
    nothing; a replay appends the same upserts again, which a consumer keyed on
    (threat_type, threat_id) absorbs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..errors import AdapterError
from ..file_batch import FileBatch, remove_pending
from ..files import PendingLines, folder_problem, fsync_folder, make_folder, reason, writable_file_problem
from ..models import Threat, ThreatRef
from ..options import Option, boolean, choice, path
from .base import Adapter

_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY = 86_400_000  # milliseconds


class JsonFilesAdapter(Adapter):
    """Writes each threat as a JSON file and/or appends upsert/delete events to a JSON Lines file.

    Withdrawal removes the threat's file and appends a ``delete`` event.
    """

    name = "json_files"
    options = (
        Option("threat_files", boolean, True),
        Option("folder", path, "phishme_intel_json"),
        Option("layout", choice("dated", "flat"), "dated"),
        Option("jsonl_file", path, None),
    )

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = []
        if not settings["threat_files"] and not settings["jsonl_file"]:
            problems.append("threat_files: is False and jsonl_file is empty; nothing would be written")
        if settings["threat_files"] and (problem := folder_problem(settings["folder"])):
            problems.append(f"folder: {problem}")
        if settings["jsonl_file"] and (problem := writable_file_problem(settings["jsonl_file"])):
            problems.append(f"jsonl_file: {problem}")
        return problems

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.folder: str | None = settings["folder"] if settings["threat_files"] else None
        self.dated: bool = settings["layout"] == "dated"
        self.jsonl_file: str | None = settings["jsonl_file"]
        self._events = PendingLines()
        self._files = FileBatch()
        self._written: dict[ThreatRef, str] = {}  # threat -> its file, written at the commit
        self._changed_folders: set[str] = set()
        self._folders: set[str] = set()  # checked to be folders, not links, during this run
        self._days: dict[int, str] = {}  # days since 1970 -> the folder of threats first published that day
        self._time: tuple[int, str] = (-1, "")  # the last time of an event, in milliseconds and as written

    def open(self) -> None:
        if self.folder is not None:
            try:
                make_folder(self.folder)
                remove_pending(self.folder)  # left by a run that died before its commit
            except OSError as exc:
                raise AdapterError(self.name, f"cannot create the folder {self.folder}: {reason(exc)}") from None
            self._folders.add(self.folder)

    def deliver(self, threats: Sequence[Threat]) -> None:
        for threat in threats:
            text = threat.json.encode("utf-8")
            ref = threat.ref
            if self.folder is not None:
                self._write(self.folder, threat, ref, text)
            if self.jsonl_file is not None:
                self._events.add(*_upsert_event(threat, ref, text, self._now()))

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        if self.folder is not None:
            for ref in refs:
                if ref in self._written:
                    self._drop(self._written.pop(ref))
            self._remove(self.folder, refs)
        if self.jsonl_file is not None:
            for ref in refs:
                self._events.add(_event("delete", ref, self._now()))

    def commit(self) -> None:
        try:
            self._files.commit()
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {exc.filename}: {reason(exc)}") from None
        self._written.clear()
        for folder in sorted(self._changed_folders):
            try:
                fsync_folder(folder)
            except OSError as exc:
                raise AdapterError(self.name, f"cannot sync the folder {folder}: {reason(exc)}") from None
        self._changed_folders.clear()
        if self.jsonl_file is not None and self._events:
            try:
                self._events.append_to(self.jsonl_file)
            except OSError as exc:
                raise AdapterError(self.name, f"cannot append to {self.jsonl_file}: {reason(exc)}") from None
            self._events.clear()

    def close(self) -> None:
        self._events.clear()
        self._files.discard()
        self._written.clear()
        self._changed_folders.clear()
        self._folders.clear()

    def _write(self, root: str, threat: Threat, ref: ThreatRef, text: bytes) -> None:
        folder = self._folder(root, threat.first_published) if self.dated else root
        target = os.path.join(folder, _file_name(ref))
        if folder not in self._folders:
            try:
                if os.path.lexists(folder):
                    make_folder(folder)  # refuses a link or a file there
                    remove_pending(folder)  # left by a run that died before its commit
                else:
                    self._files.add_folder(folder)  # made at the commit, with its files
            except OSError as exc:
                raise AdapterError(self.name, f"cannot write {target}: {reason(exc)}") from None
            self._folders.add(folder)
        previous = self._written.pop(ref, None)
        if previous is not None and previous != target:
            self._drop(previous)
        try:
            self._files.write(target, (text, b"\n"))
        except OSError as exc:  # this file's, or one written before it (see FileBatch)
            raise AdapterError(self.name, f"cannot write {exc.filename}: {reason(exc)}") from None
        self._written[ref] = target

    def _folder(self, root: str, first_published: int) -> str:
        """The date folder of a threat first published at ``first_published`` (epoch milliseconds), once a day."""
        folder = self._days.get(first_published // _DAY)
        if folder is None:
            day = dt.datetime.fromtimestamp(first_published / 1000, dt.timezone.utc)
            folder = self._days[first_published // _DAY] = os.path.join(root, day.strftime("%Y-%m-%d"))
        return folder

    def _now(self) -> str:
        """The time now as ``2024-05-01T12:00:00.123Z`` (UTC, milliseconds), formatted once a millisecond."""
        milliseconds = time.time_ns() // 1_000_000
        if self._time[0] != milliseconds:
            now = dt.datetime.fromtimestamp(milliseconds // 1000, dt.timezone.utc)
            now = now.replace(microsecond=milliseconds % 1000 * 1000)
            self._time = (milliseconds, now.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        return self._time[1]

    def _drop(self, target: str) -> None:
        """Forget the file written for ``target`` since the last commit."""
        try:
            self._files.drop(target)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {exc.filename}: {reason(exc)}") from None

    def _remove(self, root: str, refs: Sequence[ThreatRef]) -> None:
        """Remove each threat's file from the root folder or any date folder (the layout may have changed)."""
        try:
            with os.scandir(root) as entries:
                dated = sorted(e.path for e in entries if _DATE_FOLDER.match(e.name) and e.is_dir())
        except OSError as exc:
            raise AdapterError(self.name, f"cannot list the folder {root}: {reason(exc)}") from None
        for ref in refs:
            for folder in (root, *dated):
                target = os.path.join(folder, _file_name(ref))
                try:
                    os.unlink(target)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise AdapterError(self.name, f"cannot remove {target}: {reason(exc)}") from None
                self._changed_folders.add(folder)


def _file_name(ref: ThreatRef) -> str:
    return f"{ref.kind}_{ref.id}.json"


def _event(action: str, ref: ThreatRef, now: str) -> bytes:
    return orjson.dumps({"action": action, "time": now, "threat_type": ref.kind, "threat_id": ref.id})


def _upsert_event(threat: Threat, ref: ThreatRef, text: bytes, now: str) -> tuple[bytes, bytes, bytes, bytes]:
    """The upsert event of ``threat``, in parts; its ``threat`` member is ``text``, the threat's JSON text as received.

    That text is spliced in, not encoded again from the decoded threat (which cost more than
    writing the threat's file); text with a line break between its tokens (an API answer
    pretty-printed) is encoded compactly instead, so the event stays on one line.
    """
    if b"\n" in text or b"\r" in text:
        text = json.dumps(threat.raw, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return _event("upsert", ref, now)[:-1], b',"threat":', text, b"}"
