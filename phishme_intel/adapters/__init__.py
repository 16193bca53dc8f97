"""Finding adapters by name.

Every adapter, built-in or third-party, is registered under the entry-point group
``phishme_intel.adapters``: the entry point's name is the adapter's config name and its
value the :class:`~phishme_intel.adapters.base.Adapter` subclass. A package that declares::

    [options.entry_points]
    phishme_intel.adapters =
        myproduct = mypackage.adapter:MyProductAdapter

is enabled by ``[integration_myproduct] use = True`` without any change to this project.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import Adapter

GROUP = "phishme_intel.adapters"


def available() -> list[str]:
    """The names of every installed adapter, sorted."""
    return sorted({entry.name for entry in entry_points(group=GROUP)})


def load(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``.

    Raises LookupError with a readable message when no such adapter is installed or its
    entry point does not name an Adapter subclass.
    """
    matches = [entry for entry in entry_points(group=GROUP) if entry.name == name]
    if not matches:
        known = ", ".join(available()) or "none: is phishme-intel installed (pip install .)?"
        raise LookupError(f"no adapter named {name!r} is installed (installed: {known})")
    try:
        adapter = matches[0].load()
    except Exception as exc:  # a broken third-party package must be reported, not crash us
        raise LookupError(f"the adapter {name!r} failed to load: {exc}") from None
    if not (isinstance(adapter, type) and issubclass(adapter, Adapter)):
        raise LookupError(f"the entry point {name!r} does not name an Adapter subclass")
    return adapter


__all__ = ["GROUP", "Adapter", "available", "load"]
