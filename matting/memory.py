"""Process memory tuning for the streaming pipeline (glibc malloc), measured in issue 20.

Why: the pipeline's stage threads and matting workers all allocate large, short-lived
buffers (frames, crops, sparse systems). glibc gives every thread that contends for the
heap its own arena (up to 8 per core) and keeps freed memory in each of them, so peak RSS
grew with the number of threads: 2.13 GB against 1.67 GB with two arenas on the same 720p
clip (README, Speed and memory). Two arenas keep that flat at no measurable cost in
speed, and `trim()` after each network call, each person's matting and each frame hands
freed pages back to the system (1.24 GB), so the peak follows what the work in flight
needs rather than what earlier frames left behind.

No-ops where the C library is not glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8

_libc = None
_tuned = False


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        name = ctypes.util.find_library("c")
        if name and os.name == "posix":
            try:
                lib = ctypes.CDLL(name)
                if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                    _libc = lib
            except OSError:
                pass
    return _libc or None


def limit_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas (default 2, `$VIDMATTE_MALLOC_ARENAS` overrides; 0 keeps
    glibc's own). Once per process, before the stage threads start. True if applied."""
    global _tuned
    if _tuned:
        return True
    n = arenas if arenas is not None else int(os.environ.get("VIDMATTE_MALLOC_ARENAS", "2"))
    lib = _glibc()
    if lib is None or n <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    _tuned = bool(lib.mallopt(M_ARENA_MAX, n))
    return _tuned


def trim() -> None:
    """Return freed heap pages to the system (malloc_trim(0)); cheap, call per frame."""
    lib = _glibc()
    if lib is not None:
        lib.malloc_trim(0)
