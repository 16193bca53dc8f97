"""``[integration_blocklists]``: indicator lists a firewall, resolver, proxy or SIEM loads.

``formats = plain`` (the default): one file per indicator kind, ``<folder>/<kind>.txt``, one
value per line, sorted, for a Palo Alto External Dynamic List, a LogRhythm list, a QRadar
reference-set import or a ``curl`` in a script; with ``csv = True`` also
``<folder>/<kind>.csv`` with context columns. The other formats (``rpz``, ``unbound``,
``nftables``, ``ipset``, ``squid``: :mod:`._blocklist_formats`) are built from the same
domain and IPv4 entries, whatever ``kinds`` says.

The lists are not built from the deliveries but from the IOC store, ``[integration_sqlite]``
or ``[integration_postgresql]``, whichever is enabled (the first, when both are): the engine
hands this adapter the store's reader and commits the store first. The lists are rebuilt
whenever a commit follows a delivery or withdrawal, and once at the start of every run (so
a changed ``min_impact`` or the ``max_age_days`` cut-off takes effect even on a run with
nothing new). A withdrawn threat's indicators therefore leave the lists at the commit
that withdraws it, unless another live threat also lists them. Every file is replaced
atomically, and only when its content changed, so a poller's If-Modified-Since works.
A rebuild reads the store once, in (kind, value) order (URLs by what follows the scheme
when ``strip_url_scheme``), and writes each list as its rows come, so its memory does not
grow with the store; only the domain and IPv4 values the other formats are built from are held.

Indicators without an impact (kit e-mail addresses, hashes of executables without a
severity) are listed only when ``min_impact = none`` (the store is asked for those of the
impacts wanted only). Every value read from the store passes the run's allow-list, and the
indicator gate again unless this run wrote it: a store written by an earlier run, or an
earlier release, may hold values the gate of this release rejects (they are left out, with a
debug line). The rows of a threat this run delivered, or every row when the store listed
nothing as the run opened it (a first backfill), came through this run's gate on their way
in and are not judged twice. Subject lines are never listed. CSV cells that a spreadsheet
would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
are neutralised the OWASP way: a leading ``'``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import heapq
import io
import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from ..errors import AdapterError
from ..files import Replacement, folder_problem, make_folder, reason
from ..models import IMPACTS, INDICATOR_KINDS, Threat, ThreatRef
from ..models.indicators import verdict
from ..models.limits import is_time
from ..options import Option, boolean, choice, integer, path
from . import _blocklist_formats
from .base import Adapter
from .store import Listing, StoreReader, value_runs, without_scheme

DEFAULT_KINDS = ("url", "domain", "ipv4", "email", "md5", "sha256")
LISTED_KINDS = tuple(kind for kind in INDICATOR_KINDS if kind != "subject")
#: What a spreadsheet takes for the start of a formula (OWASP "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "value", "impact", "role", "malware_family", "threat_type", "threat_id", "threat_label",
    "last_published",
)
_CHUNK = 65536
#: How many entries of a list are written at once (their lines joined).
_ROWS = 1024
_T = TypeVar("_T")
_RANK = {impact: len(IMPACTS) - position for position, impact in enumerate(IMPACTS)}  # Major 4 .. None 1


def kinds(raw: str) -> tuple[str, ...]:
    """A comma-separated list of the kinds a list may hold (not ``subject``), without repeats, in the order given."""
    found = [word.strip().lower() for word in raw.split(",") if word.strip()]
    unknown = [word for word in found if word not in LISTED_KINDS]
    if unknown or not found:
        raise ValueError(f"must be a comma-separated list of {', '.join(LISTED_KINDS)}, not {raw!r}")
    return tuple(dict.fromkeys(found))


def _precedence(entry: Listing) -> tuple[int, int, str, int]:
    """Which of two rows listing one value a list shows: higher impact first, then the newer
    threat; the threat's identity breaks a tie."""
    return _RANK.get(entry.impact or "", 0), entry.last_published, entry.threat_type, entry.threat_id


class BlocklistsAdapter(Adapter):
    """Rebuilds one list per indicator kind from the IOC store at each commit.

    Withdrawal needs nothing of its own: the store adapter deletes the threat's indicators
    and the next rebuild leaves them out. ``sqlite_path`` is no longer needed; a value that
    is not the store's file is ignored, with a warning.
    """

    name = "blocklists"
    options = (
        Option("folder", path, "blocklists"),
        Option("kinds", kinds, DEFAULT_KINDS),
        Option("min_impact", choice("major", "moderate", "minor", "none"), "moderate"),
        Option("max_age_days", integer(0, 36500), 0),
        Option("strip_url_scheme", boolean, False),
        Option("csv", boolean, False),
        Option("formats", _blocklist_formats.formats, ("plain",)),
        Option("sqlite_path", path, None),
    )
    reads_store = True

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        problem = folder_problem(settings["folder"])
        return [f"folder: {problem}"] if problem else []

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.folder: str = settings["folder"]
        self.kinds: tuple[str, ...] = settings["kinds"]
        self.min_rank: int = 0 if settings["min_impact"] == "none" else _RANK[settings["min_impact"].title()]
        self.max_age_days: int = settings["max_age_days"]
        self.strip_url_scheme: bool = settings["strip_url_scheme"]
        self.csv: bool = settings["csv"]
        self.formats: tuple[str, ...] = settings["formats"]
        self.sqlite_path: str | None = settings["sqlite_path"]
        self._store: StoreReader | None = None
        self._changed = False
        #: The rows a rebuild read: the first one's tell whether the store was empty as the run opened it.
        self._read = 0
        #: True when every row of the store came through this run's gate (it listed nothing at ``open``).
        self._fresh = False
        #: The threats this run delivered through its gate (when not :attr:`_fresh`): their rows need no verdict.
        self._gated: set[tuple[str, int]] = set()

    def read_from(self, store: StoreReader) -> None:
        self._store = store
        if self.sqlite_path and (store.path is None or os.path.abspath(store.path) != self.sqlite_path):
            self.log.warning("[integration_blocklists] sqlite_path %s is not needed and ignored: the lists are "
                             "built from the %s", self.sqlite_path, store.where)

    def open(self) -> None:
        try:
            make_folder(self.folder)
        except OSError as exc:
            raise AdapterError(self.name, f"cannot create the folder {self.folder}: {reason(exc)}") from None
        self.rebuild()
        self._fresh = self._read == 0

    def deliver(self, threats: Sequence[Threat]) -> None:
        """Note that the lists change, and which threats' rows the store holds as this run's gate left them.

        The store adapter replaces every indicator row of a delivered threat (it is delivered first).
        """
        self._changed = self._changed or bool(threats)
        keep_private_ips = self.gate.keep_private_ips
        for threat in threats:
            if threat.gate.keep_private_ips != keep_private_ips:  # judged by another gate: judged again here
                self._fresh = False
                self._gated.discard(threat.ref)
            elif not self._fresh:
                self._gated.add(threat.ref)

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        self._changed = self._changed or bool(refs)

    def commit(self) -> None:
        if self._changed:
            self.rebuild()
            self._changed = False

    def rebuild(self) -> None:
        """Write every list from what the store holds now, one entry at a time (never the whole store in memory).

        Each kind is read once: its list, its CSV and, for the other formats, its values.
        """
        reader = self._reader
        self._read = 0
        unrenderable: set[str] = set()
        others = [fmt for fmt in self.formats if fmt != "plain"]
        values: dict[str, list[str]] = {}
        since = int((time.time() - self.max_age_days * 86400) * 1000) if self.max_age_days else 0
        wanted = self._wanted_kinds()
        if self._fresh and not self.csv:  # every row passed the gate on its way in: the distinct values suffice
            distinct = reader.listed_values(wanted, since, self._impacts, url_without_scheme=self.strip_url_scheme)
            for kind, runs in itertools.groupby(distinct, key=itemgetter(0)):
                values[kind] = self._list_values(kind, map(itemgetter(1), runs))
        else:
            for kind, rows in itertools.groupby(self._listed(wanted, since), key=itemgetter(0)):
                values[kind] = self._list_kind(kind, rows, since, unrenderable)
        for kind in wanted:
            if kind not in values:
                values[kind] = self._list_kind(kind, iter(()), since, unrenderable)
        domains = values.get("domain", [])
        widest = _blocklist_formats.Widest(domains)
        for fmt in others:
            found = _blocklist_formats.files(fmt, domains, values.get("ipv4", []), self._current, widest)
            for name, pieces in found.items():
                with _Output(self, name, keep_same=True) as output:
                    for piece in pieces:
                        output.add(piece)
                    output.finish()
        if unrenderable:
            self.log.warning(
                "left out the indicators of %d threats whose last_published is not a time from 1970 to 9999 "
                "(stored by an older release; the next delivery of each replaces it): %s",
                len(unrenderable), ", ".join(sorted(unrenderable)[:20]),
            )

    def _list_kind(self, kind: str, rows: Iterator[Listing], since: int, unrenderable: set[str]) -> list[str]:
        """Write the files of ``kind`` from its ``rows``; its values when the other formats need them.

        A value the gate or ``strip_url_scheme`` changed into one sorting before what was
        already written cannot be streamed (:class:`_OutOfOrder`): the kind is then read
        again and its entries gathered in memory first.
        """
        try:
            return self._write_kind(kind, _chunks(self._entries(kind, rows, unrenderable, streamed=True)))
        except _OutOfOrder:
            entries = self._entries(kind, self._listed((kind,), since), unrenderable, streamed=False)
            return self._write_kind(kind, _chunks(entries))

    def _list_values(self, kind: str, runs: Iterator[list[str]]) -> list[str]:
        """Write the list of ``kind`` (no CSV) from the store's ``runs`` of its distinct values, of rows
        that passed this run's gate; its values when the other formats need them."""
        allowlist = self.gate.allowlist
        if allowlist:
            runs = ([value for value in run if not allowlist.covers(kind, value)] for run in runs)
        if kind == "url" and self.strip_url_scheme:
            # http and https of one URL come one after the other, the same once stripped
            runs = (values for _kind, values in value_runs([("url", value) for value in map(without_scheme, run)]
                                                             for run in runs if run))
        return self._write_kind(kind, ((run, None) for run in runs))

    def _names(self, kind: str) -> list[str]:
        """The files of the plain lists of ``kind``: its ``.txt``, and its ``.csv`` when ``csv``."""
        if "plain" in self.formats and kind in self.kinds:
            return [f"{kind}.txt", *([f"{kind}.csv"] if self.csv else [])]
        return []

    def _write_kind(self, kind: str, chunks: Iterator[tuple[list[str], list[Listing] | None]]) -> list[str]:
        """Write the files of ``kind`` as its ``chunks`` come: values, and their entries for the CSV
        (None: no CSV); its values when the other formats need them."""
        kept: list[str] = []
        keep = kind in ("domain", "ipv4") and any(fmt != "plain" for fmt in self.formats)
        with contextlib.ExitStack() as stack:
            outputs = [stack.enter_context(_Output(self, name, keep_same=True)) for name in self._names(kind)]
            if len(outputs) > 1:
                outputs[1].add_row(CSV_COLUMNS)
            count = 0
            for values, entries in chunks:
                if not values:
                    continue
                count += len(values)
                if outputs:
                    outputs[0].add_lines(values)
                if len(outputs) > 1 and entries is not None:
                    for entry in entries:
                        outputs[1].add_row(_csv_cells(entry))
                if keep:
                    kept += values
            for output in outputs:
                output.finish()
        self.log.debug("%s: %d entries", kind, count)
        return kept

    def _entries(self, kind: str, rows: Iterator[Listing], unrenderable: set[str],
                 streamed: bool) -> Iterator[Listing]:
        """The entries of ``kind`` passing the filters, sorted by value, one per value (the strongest).

        ``streamed``: merged as the store's rows come in value order (URLs by their value
        without the scheme when ``strip_url_scheme``); values the gate changed wait in a heap
        until the stream reaches them, and one sorting before the last value given raises
        :class:`_OutOfOrder`. Otherwise every entry is gathered by value first.
        """
        admitted = self._admitted(kind, rows, unrenderable)
        if not streamed:
            best: dict[str, Listing] = {}
            for _place, entry in admitted:
                known = best.get(entry.value)
                best[entry.value] = entry if known is None else max(known, entry, key=_precedence)
            yield from sorted(best.values(), key=lambda entry: entry.value)
            return
        merged = _Merged()
        later: list[tuple[str, int, Listing]] = []
        for count, (place, entry) in enumerate(admitted):
            if entry.value == place:
                while later and later[0][0] <= entry.value:
                    yield from merged.take(heapq.heappop(later)[2])
                yield from merged.take(entry)
            elif merged.last is not None and entry.value <= merged.last.value:
                yield from merged.take(entry)
            else:
                heapq.heappush(later, (entry.value, count, entry))
        while later:
            yield from merged.take(heapq.heappop(later)[2])
        yield from merged.flush()

    def _admitted(self, kind: str, rows: Iterator[Listing], unrenderable: set[str]) -> Iterator[tuple[str, Listing]]:
        """(place, entry) of each of the ``rows`` of ``kind`` passing the gate and allow-list filters.

        The entry's value is the gate's canonical value, without the scheme when ``strip_url_scheme``;
        its place is what the store ordered the row by (its value, without the scheme likewise).
        """
        stripped = kind == "url" and self.strip_url_scheme
        for row in rows:
            self._read += 1
            if not is_time(row.last_published):
                unrenderable.add(ThreatRef(row.threat_type, row.threat_id).api_id)
            elif (admitted := self._admit(kind, row)) is not None:
                yield without_scheme(row.value) if stripped else row.value, admitted

    @property
    def _reader(self) -> StoreReader:
        if self._store is None:
            raise AdapterError(self.name, "opened without the store it is built from")
        return self._store

    def _listed(self, kinds: Sequence[str], since: int) -> Iterator[Listing]:
        """The store's rows of ``kinds`` of the impacts listed, whose threat was last published since ``since``."""
        return self._reader.listed(kinds, since, self._impacts, url_without_scheme=self.strip_url_scheme)

    @property
    def _impacts(self) -> list[str] | None:
        """The impacts listed (None: any, or none)."""
        return None if self.min_rank == 0 else [impact for impact, rank in _RANK.items() if rank >= self.min_rank]

    def _wanted_kinds(self) -> tuple[str, ...]:
        """The kinds the plain lists and the other formats are built from."""
        wanted = list(self.kinds) if "plain" in self.formats else []
        if set(self.formats) & {"rpz", "unbound", "squid"}:
            wanted.append("domain")
        if set(self.formats) & {"nftables", "ipset", "squid"}:
            wanted.append("ipv4")
        return tuple(dict.fromkeys(wanted))

    def _current(self, name: str) -> bytes | None:
        """The content of a file of the folder, None when there is none."""
        try:
            with open(os.path.join(self.folder, name), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AdapterError(self.name, f"cannot read {os.path.join(self.folder, name)}: {reason(exc)}") from None

    def _admit(self, kind: str, entry: Listing) -> Listing | None:
        """``entry`` with its listed value, or None when it is left out (the store left out the impacts not wanted)."""
        value: str | None = entry.value
        if not (self._fresh or (entry.threat_type, entry.threat_id) in self._gated):
            value, reason = verdict(kind, entry.value, keep_private_ips=self.gate.keep_private_ips)
            if value is None:
                self.log.debug("left out of the %s list, not an indicator (%s): %r", kind, reason, entry.value)
                return None
        if self.gate.allowlist and self.gate.allowlist.covers(kind, value):
            return None
        if kind == "url" and self.strip_url_scheme:
            value = without_scheme(value)
        return entry if value == entry.value else entry._replace(value=value)

class _OutOfOrder(Exception):
    """A value changed by the gate or ``strip_url_scheme`` sorts before a value already streamed."""


class _Output:
    """A file of the folder being written, in chunks of about 64 KiB; errors are the adapter's, naming the file."""

    def __init__(self, adapter: BlocklistsAdapter, name: str, keep_same: bool) -> None:
        self._adapter = adapter
        self.target = os.path.join(adapter.folder, name)
        self._keep_same = keep_same
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._replacement = self._guarded(Replacement, self.target)

    def __enter__(self) -> _Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self._replacement.__exit__(*exc)

    def add(self, data: bytes) -> None:
        self._guarded(self._replacement.write, data)

    def add_lines(self, lines: list[str]) -> None:
        """Each of ``lines`` followed by a newline."""
        self._text.write("\n".join(lines))
        self._text.write("\n")
        if self._text.tell() >= _CHUNK:
            self._flush()

    def add_row(self, cells: Sequence[str]) -> None:
        """One CSV line of ``cells``."""
        self._csv.writerow(cells)
        if self._text.tell() >= _CHUNK:
            self._flush()

    def finish(self) -> bool:
        """Replace the file, unless it holds these bytes already; True when it was replaced."""
        self._flush()
        return self._guarded(self._replacement.finish, self._keep_same)

    def _flush(self) -> None:
        if self._text.tell():
            self.add(self._text.getvalue().encode())
            self._text.seek(0)
            self._text.truncate()

    def _guarded(self, call: Callable[..., _T], *args: Any) -> _T:
        try:
            return call(*args)
        except OSError as exc:
            raise AdapterError(self._adapter.name, f"cannot write {self.target}: {reason(exc)}") from None


class _Merged:
    """The strongest entry of each value, from entries given in value order (equal values in a row)."""

    def __init__(self) -> None:
        self.last: Listing | None = None

    def take(self, entry: Listing) -> Iterator[Listing]:
        """Yield the entry of the previous value once ``entry`` starts a new one."""
        last = self.last
        if last is None or entry.value > last.value:
            if last is not None:
                yield last
            self.last = entry
        elif entry.value == last.value:
            self.last = max(last, entry, key=_precedence)
        else:
            raise _OutOfOrder(entry.value)

    def flush(self) -> Iterator[Listing]:
        """Yield the last value's entry."""
        if self.last is not None:
            yield self.last
            self.last = None


def _chunks(entries: Iterator[Listing]) -> Iterator[tuple[list[str], list[Listing]]]:
    """The values and ``entries``, :data:`_ROWS` at a time."""
    while chunk := list(itertools.islice(entries, _ROWS)):
        yield [entry.value for entry in chunk], chunk


def _csv_cells(entry: Listing) -> list[str]:
    published = dt.datetime.fromtimestamp(entry.last_published / 1000, dt.timezone.utc)
    return [neutralised(cell) for cell in (
        entry.value, entry.impact or "", entry.role or "", entry.malware_family or "", entry.threat_type,
        str(entry.threat_id), entry.threat_label or "", published.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )]


def neutralised(cell: str) -> str:
    """``cell`` as a spreadsheet shows it without running it: a ``'`` before a formula's first character."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell
