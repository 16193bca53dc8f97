"""Watching the sync from outside: the status file, the metrics file, ``--status`` and the progress line.

These modules read the sync's :class:`~phishme_intel.state.Report` and
:class:`~phishme_intel.state.SyncState`; they never import the engine.
"""
