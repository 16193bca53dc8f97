"""The package's rooms import only downward, as the package docstring describes.

Each module belongs to a room (its first name below ``phishme_intel``); a module may import
from its own room or from a room earlier in :data:`ROOMS`, never from a later one. So the
engine never reaches a concrete adapter or the commands, monitoring never reaches the
engine, and nothing below the CLI knows of it. A new top-level module must be placed here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "phishme_intel"
ROOMS = [
    "errors", "version", "interrupts", "memory", "retry", "options", "files", "file_batch", "state", "logs",
    "models", "adapters", "monitoring", "config", "lock", "schedule", "client", "sync",
    "lookup", "commands", "service", "cli", "__main__", "simulator", "demo",
]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imported_rooms(name: str, path: Path) -> set[str]:
    """The rooms of the package that ``name`` imports, from its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                rooms.add(target[0])
            else:
                rooms.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("phishme_intel."):
            rooms.add(node.module.split(".")[1])
    return rooms


def test_every_module_has_a_room():
    rooms = {name.split(".")[0] for name, _ in modules() if name}
    assert rooms <= set(ROOMS), f"place these in ROOMS (and the package docstring): {rooms - set(ROOMS)}"


@pytest.mark.parametrize(("name", "path"), [(n, p) for n, p in modules() if n], ids=lambda value: str(value))
def test_imports_go_only_downward(name, path):
    room = name.split(".")[0]
    upward = {other for other in imported_rooms(name, path) if ROOMS.index(other) > ROOMS.index(room)}
    assert not upward, f"phishme_intel.{name} ({room}) imports from a room above it: {sorted(upward)}"


def test_monitoring_never_imports_the_engine():
    for name, path in modules():
        if name.startswith("monitoring"):
            assert "sync" not in imported_rooms(name, path), name
