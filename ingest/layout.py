"""The index directory: the only contract between build time and query time.

    <index_dir>/
      CURRENT            name of the live generation (replaced atomically)
      LOCK               writers hold an exclusive flock on it
      embeddings.sqlite  content-hash -> vector cache, shared by generations
      gen-000003/        one immutable generation
        manifest.json    model, dimension, splitter and tokenizer settings, counts, versions
        store.sqlite     articles, paragraphs, passages (SQLite: a query reads only its rows)
        dense.faiss      FAISS index of passage vectors, ids = passage row ids
        bm25/            bm25s index (numpy arrays + JSON, no pickle)
        bm25_ids.npy     bm25 document number -> passage row id

A writer builds a new generation beside the live one and then replaces
CURRENT, so a crash at any point leaves the previous index whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import IndexNotFoundError

FORMAT_VERSION = 1
CURRENT = "CURRENT"
LOCK = "LOCK"
CACHE = "embeddings.sqlite"
MANIFEST = "manifest.json"
STORE = "store.sqlite"
DENSE = "dense.faiss"
BM25_DIR = "bm25"
BM25_IDS = "bm25_ids.npy"
GEN_PREFIX = "gen-"


def generation_name(number: int) -> str:
    return f"{GEN_PREFIX}{number:06d}"


def current_generation(index_dir: str | os.PathLike) -> Path | None:
    """The live generation's folder, or None if there is no index yet."""
    pointer = Path(index_dir) / CURRENT
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    gen = Path(index_dir) / name
    return gen if (gen / MANIFEST).is_file() else None


def require_generation(index_dir: str | os.PathLike) -> Path:
    """Like ``current_generation`` but raises ``IndexNotFoundError``."""
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexNotFoundError(
            f"No index at {index_dir}. Run 'wenda ingest' first or set WENDA_INDEX_DIR."
        )
    return gen


def read_manifest(gen: Path) -> dict:
    return json.loads((gen / MANIFEST).read_text(encoding="utf-8"))


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
