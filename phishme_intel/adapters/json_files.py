"""``[integration_json_files]``: threats as JSON files, for forwarders and scripts that read files.

Two outputs, either or both:

threat files (``threat_files = True``)
    One pretty-printed JSON file per threat, the threat exactly as the API served it, at
    ``<folder>/<YYYY-MM-DD>/<threat_type>_<id>.json`` (``layout = dated``: the UTC date the
    threat was first published) or ``<folder>/<threat_type>_<id>.json`` (``layout = flat``).
    A delivery rewrites the file atomically (temporary file, fsync, rename); a withdrawal
    removes it, in whichever of the two layouts it is.
JSON Lines (``jsonl_file``)
    One event per line, appended: ``{"action": "upsert", "time": ..., "threat_type": ...,
    "threat_id": ..., "threat": {...}}`` for a delivery; for a withdrawal the same with
    ``"action": "delete"`` and without ``threat``. The events of a commit are appended at
    :meth:`~JsonFilesAdapter.commit` in one write and fsynced, so a failed run appends
    nothing; a replay appends the same upserts again, which a consumer keyed on
    (threat_type, threat_id) absorbs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import AdapterError
from ..files import append_lines, folder_problem, fsync_folder, make_folder, reason, writable_file_problem, write_atomic
from ..models import Threat, ThreatRef
from ..options import Option, boolean, choice, path
from .base import Adapter

_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
        self._events: list[bytes] = []
        self._changed_folders: set[str] = set()
        self._folders: set[str] = set()  # checked to be folders, not links, during this run

    def open(self) -> None:
        if self.folder is not None:
            try:
                make_folder(self.folder)
            except OSError as exc:
                raise AdapterError(self.name, f"cannot create the folder {self.folder}: {reason(exc)}") from None

    def deliver(self, threats: Sequence[Threat]) -> None:
        for threat in threats:
            if self.folder is not None:
                self._write(self.folder, threat)
            if self.jsonl_file is not None:
                self._events.append(_event("upsert", threat.ref, threat=threat.raw))

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        if self.folder is not None:
            self._remove(self.folder, refs)
        if self.jsonl_file is not None:
            self._events.extend(_event("delete", ref) for ref in refs)

    def commit(self) -> None:
        for folder in sorted(self._changed_folders):
            try:
                fsync_folder(folder)
            except OSError as exc:
                raise AdapterError(self.name, f"cannot sync the folder {folder}: {reason(exc)}") from None
        self._changed_folders.clear()
        if self.jsonl_file is not None and self._events:
            try:
                append_lines(self.jsonl_file, self._events)
            except OSError as exc:
                raise AdapterError(self.name, f"cannot append to {self.jsonl_file}: {reason(exc)}") from None
            self._events.clear()

    def close(self) -> None:
        self._events.clear()
        self._changed_folders.clear()

    def _write(self, root: str, threat: Threat) -> None:
        folder = root
        if self.dated:
            day = dt.datetime.fromtimestamp(threat.first_published / 1000, dt.timezone.utc)
            folder = os.path.join(root, day.strftime("%Y-%m-%d"))
        target = os.path.join(folder, _file_name(threat.ref))
        data = json.dumps(threat.raw, indent=2, ensure_ascii=False).encode() + b"\n"
        try:
            if folder not in self._folders and make_folder(folder):
                self._changed_folders.add(root)
            self._folders.add(folder)
            write_atomic(target, data)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot write {target}: {reason(exc)}") from None

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


def _event(action: str, ref: ThreatRef, **extra: Any) -> bytes:
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = {"action": action, "time": now, "threat_type": ref.kind, "threat_id": ref.id, **extra}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
