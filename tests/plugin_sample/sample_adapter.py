"""A third-party adapter, shipped the way another package would ship one.

It uses only phishme-intel's public adapter API and is registered by the entry point in
``phishme_intel_sample-1.0.dist-info/entry_points.txt``: putting this folder on
``PYTHONPATH`` installs it, exactly as ``pip install`` of a package declaring
``phishme_intel.adapters = sample = sample_adapter:SampleAdapter`` would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from phishme_intel.adapters.base import Adapter
from phishme_intel.errors import AdapterError
from phishme_intel.models import Threat, ThreatRef
from phishme_intel.options import REQUIRED, Option, boolean, path


class SampleAdapter(Adapter):
    """Appends one JSON line per delivered or withdrawn threat to ``journal`` at each commit."""

    name = "sample"
    options = (
        Option("journal", path, REQUIRED),
        Option("fail_commit", boolean, False),
        Option("crash_check", boolean, False),
    )

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> list[str]:
        if settings["crash_check"]:
            raise RuntimeError(f"the sample plug-in's check crashed on {settings['journal']}")
        return []

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.journal: str = settings["journal"]
        self._lines: list[str] = []

    def deliver(self, threats: Sequence[Threat]) -> None:
        self._lines += [json.dumps({"action": "deliver", "kind": t.kind, "id": t.id}) for t in threats]

    def withdraw(self, refs: Sequence[ThreatRef]) -> None:
        self._lines += [json.dumps({"action": "withdraw", "kind": r.kind, "id": r.id}) for r in refs]

    def commit(self) -> None:
        if self.settings["fail_commit"]:
            raise AdapterError(self.name, f"cannot write {self.journal}: fail_commit is set")
        with open(self.journal, "a", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in self._lines)
            handle.flush()
            os.fsync(handle.fileno())
        self._lines.clear()
