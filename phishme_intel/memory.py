"""The C library's memory allocator: how a run sets glibc's malloc up, and gives its free memory back.

Each does nothing on a C library without the function it calls (``mallopt``, ``malloc_trim``:
glibc's own).
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_MAPPED_FROM = 128 * 1024
_M_ARENA_MAX = -8
_ARENAS = 2


def map_large_buffers() -> None:
    """Have glibc's malloc give every buffer of 128 KiB or more its own mapping, returned when freed, and use two heaps.

    By default glibc raises that threshold to the size of each such buffer freed, so after
    the first answer the answers' bodies and texts (about 1 MiB each) come from the heaps of
    the worker threads' arenas and stay there, scattered: the sync's peak RSS on W1 was
    about 30 MiB higher (bench/run.py). By default it also gives each thread that allocates
    at the same time as another a heap (arena) of its own, up to eight per core: with every
    adapter on, a run's dozen threads left free memory scattered over as many heaps; two
    heaps took 2-3 MiB off the W1 peak with every adapter on (99 -> 96-97 MiB, alternating
    runs).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM)
    mallopt(_M_ARENA_MAX, _ARENAS)


def give_back() -> None:
    """Return the free memory of malloc's heaps to the system (``malloc_trim(0)``), before a step that needs much.

    Memory freed inside a heap stays in the process (and in its RSS) for the next
    allocation of a fitting size; a large buffer allocated after it is mapped anew, on top.
    Trimming first lets the system hand those pages to the buffer, so the step does not
    raise the process's peak. It takes a few milliseconds.
    """
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    malloc_trim(0)
