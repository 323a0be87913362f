"""Where things are in an index dir (format 2).

    <index_dir>/
      FORMAT               "wenda-index 2"
      LOCK                 writers' flock (filelock); HTTP writes try it without waiting
      COMPACT.LOCK         one compactor at a time
      WRITER.json          the lock holder's progress {pid, kind, started, done, total}: gives Retry-After
      store.sqlite (+ -wal, -shm)  articles, paragraphs, passages, vectors, commits, meta (WAL)
      manifest.json        a readable copy of the latest commit's manifest (never read for correctness)
      keyword-000001-…/    tantivy index, a new folder per rebuild
      dense/base-000412-….faiss  immutable FAISS base (flat or IVF) built by compaction

Format 1 had ``CURRENT`` naming a ``gen-*/`` folder that held a full copy of
everything; the next write converts it (``v1.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

FORMAT = "FORMAT"
FORMAT_TEXT = "wenda-index 2\n"
LOCK = "LOCK"
COMPACT_LOCK = "COMPACT.LOCK"
WRITER = "WRITER.json"
STORE = "store.sqlite"
MANIFEST = "manifest.json"
DENSE_DIR = "dense"
KEYWORD_PREFIX = "keyword-"
#: Format 1's pointer file and generation folders (read for conversion only).
V1_CURRENT = "CURRENT"
V1_GEN_PREFIX = "gen-"
#: Format 1's (and the eval runner's) embedding cache; vectors now live in the store.
V1_CACHE = "embeddings.sqlite"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def format_of(index_dir: Path) -> int | None:
    """2, 1, or None when there is no index."""
    if (index_dir / FORMAT).is_file():
        return 2
    if (index_dir / V1_CURRENT).is_file():
        return 1
    return None
