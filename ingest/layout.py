"""Where an index dir is, for code that only needs to know whether one exists.

The layout itself is ``ingest/dirstore/layout.py`` (format 2). This module
keeps the few names callers outside the backend use: the embedding cache
file that eval keeps beside an index, and ``current_generation``, which says
whether a dir holds a published index.
"""

from __future__ import annotations

import os
from pathlib import Path

from .dirstore.layout import V1_CACHE, fsync_dir, format_of, write_atomic

FORMAT_VERSION = 2
#: An embedding cache (content hash -> vector) kept beside an index by eval
#: and by format 1; format 2 keeps passage vectors in its store.
CACHE = V1_CACHE
LOCK = "LOCK"

__all__ = ["CACHE", "FORMAT_VERSION", "LOCK", "current_generation", "format_of", "fsync_dir", "write_atomic"]


def current_generation(index_dir: str | os.PathLike) -> Path | None:
    """The index dir when it holds a published index of the current format,
    else None (no index, or format 1, which the next write converts)."""
    from .dirstore import store as st
    from .dirstore.layout import STORE

    path = Path(index_dir)
    if format_of(path) != 2:
        return None
    try:
        conn = st.connect(path / STORE)
        try:
            return path if st.latest_gen(conn) > 0 else None
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - an unreadable store is no index
        return None
