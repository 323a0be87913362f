"""Maintenance of an index dir: dense and keyword compaction, purge, file GC.

Compaction builds outside the writer lock from a published generation Gc
and publishes under the lock in a few milliseconds, so writers are refused
(503, Retry-After) only that long:

* **dense**: a new base file from the rows visible at Gc (IVF reuses its
  trained centroids while N stays within 4x of what it was trained on),
  named by a new commit row with ``dense_base_gen = Gc`` and
  ``dense_base_max_rowid = max_rowid(Gc)``. Rows added after Gc are the new
  delta, rows deleted after Gc the new dead set: correct by construction.
* **keyword**: a new tantivy folder from the stored terms of the rows visible
  at Gc; under the lock it catches up with the writes after Gc.
* **purge**: rows deleted long enough ago that no base, keyword index or
  reader needs them; vectors stay (they are the embedding cache).
* **GC**: files and folders that none of the last two commits names, older
  than ``gc_age_s``.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
import uuid
from dataclasses import replace

import numpy as np

from ..backend import MaintenanceReport
from ..contract import Manifest
from ..errors import IndexBusyError
from . import dense as dn
from . import keyword as kw
from . import layout
from . import store as st
from .backend import DirBackend, _now, gc_cutoff, recover

#: Rows the keyword rebuild reads from SQLite at a time.
BATCH = 20_000


def due(backend: DirBackend, conn: sqlite3.Connection, c: st.Commit) -> list[str]:
    """The parts whose compaction trigger fired at commit ``c``."""
    o = backend.options
    out = []
    base_size = int(st.get_meta(conn, "dense_base_size", "0"))
    delta = c.max_rowid - c.dense_base_max_rowid  # an upper bound: deleted rows count too
    dead = conn.execute("SELECT count(*) FROM passages WHERE deleted_gen > ? AND deleted_gen <= ?",
                        (c.dense_base_gen, c.gen)).fetchone()[0] if c.dense_base else 0
    if (delta > o.dense.delta_max or (base_size and dead > o.dense.dead_share * base_size)
            or dn.choose_kind(c.passages, c.dense_kind, o.dense) != c.dense_kind):
        out.append("dense")
    docs = int(st.get_meta(conn, "keyword_docs", "0"))
    deleted = int(st.get_meta(conn, "keyword_deleted", "0"))
    if docs and deleted > o.keyword_rebuild_deleted * docs:
        out.append("keyword")
    return out


def _build_dense(backend: DirBackend, conn: sqlite3.Connection, c: st.Commit) -> dict:
    o = backend.options.dense
    dim = Manifest.from_json(c.manifest).dim
    kind = dn.choose_kind(c.passages, c.dense_kind, o)
    trained_n = int(st.get_meta(conn, "dense_trained_n", "0"))
    nlist = c.dense_nlist
    if (kind == "ivf" and c.dense_kind == "ivf" and c.dense_base and trained_n
            and trained_n / 4 <= c.passages <= trained_n * 4):
        # Keep the trained centroids: drop the dead rows, add the delta.
        index = dn.load_base_for_update(backend.path / c.dense_base)
        dead = st.rows_deleted_between(conn, c.dense_base_gen, c.gen)
        if dead:
            index.remove_ids(np.asarray(dead, np.int64))
        ids, vecs = st.vectors_of_rows(conn, f"p.id > :lo AND {st._P_VISIBLE}",
                                       {"lo": c.dense_base_max_rowid, "g": c.gen}, dim)
        if len(ids):
            index.add_with_ids(vecs, ids)
        _, sample = st.vectors_of_rows(conn, f"p.id IN (SELECT id FROM passages WHERE {st.VISIBLE} "
                                                f"ORDER BY random() LIMIT 2000)", {"g": c.gen}, dim)
    else:
        ids, vecs = st.vectors_of_rows(conn, st._P_VISIBLE, {"g": c.gen}, dim)
        sample = vecs[np.random.default_rng(0).choice(len(vecs), min(2000, len(vecs)), replace=False)] \
            if len(vecs) else vecs
        if kind == "ivf":
            index, nlist = dn.build_ivf(ids, vecs, dim)
            trained_n = len(ids)
        else:
            index, nlist, trained_n = dn.flat(ids, vecs, dim), None, 0
        del ids, vecs  # FAISS holds its own copy now
    nprobe = dn.tune_nprobe(index, sample) if kind == "ivf" else None
    name = f"{layout.DENSE_DIR}/base-{c.gen:06d}-{uuid.uuid4().hex[:6]}.faiss"
    dn.write_base(index, backend.path / name)
    return {"dense_kind": kind, "dense_base": name, "dense_base_gen": c.gen, "dense_base_max_rowid": c.max_rowid,
            "dense_nlist": nlist, "dense_nprobe": nprobe, "_size": int(index.ntotal), "_trained": trained_n}


def _add_rows(conn: sqlite3.Connection, writer: kw.KeywordWriter, where: str, params: dict, gen: int) -> int:
    last, n = 0, 0
    while True:
        rows = conn.execute(f"SELECT id, terms FROM passages WHERE id > :last AND {where} ORDER BY id LIMIT {BATCH}",
                            {**params, "last": last}).fetchall()
        if not rows:
            return n
        writer.add([r for r, _ in rows], [t.split(" ") if t else [] for _, t in rows], gen)
        n += len(rows)
        last = rows[-1][0]


def _build_keyword(backend: DirBackend, conn: sqlite3.Connection, c: st.Commit) -> str:
    name = f"{layout.KEYWORD_PREFIX}{c.gen:06d}-{uuid.uuid4().hex[:6]}"
    index = kw.open_index(backend.path / name, create=True)
    w = kw.KeywordWriter(index)
    _add_rows(conn, w, st.VISIBLE, {"g": c.gen}, c.gen)
    w.commit()
    return name


def maintain(backend: DirBackend, *, force: bool = False, wait: float = 30.0) -> MaintenanceReport:
    """Compact what is due (everything with ``force``), purge, GC; see the module doc."""
    from filelock import FileLock, Timeout

    if not backend.exists() or backend.latest() is None:
        return MaintenanceReport(0, ())
    clock = FileLock(backend.path / layout.COMPACT_LOCK, timeout=0, thread_local=False, preserve_lock_file=True)
    try:
        clock.acquire()
    except Timeout:
        return MaintenanceReport(backend.generation(), ("skipped: another compaction is running",))
    try:
        conn = st.connect(backend.path / layout.STORE)
        try:
            c = st.latest_commit(conn)
            todo = ["dense", "keyword"] if force else due(backend, conn, c)
            done: list[str] = []
            new_dense = _build_dense(backend, conn, c) if "dense" in todo else None
            new_kw = _build_keyword(backend, conn, c) if "keyword" in todo else None
        finally:
            conn.close()
        try:
            with backend.locked(wait=wait if (new_dense or new_kw) else 0.0, kind="maintain"):
                gen = _publish(backend, c, new_dense, new_kw) if (new_dense or new_kw) else c.gen
                purged = _purge(backend)
                _gc(backend)
        except IndexBusyError:
            if new_dense or new_kw:
                raise
            return MaintenanceReport(c.gen, ("skipped: a writer holds the index",))
        if new_dense:
            done.append(f"dense: {new_dense['dense_kind']} base of {new_dense['_size']} passages"
                        + (f" (nlist {new_dense['dense_nlist']}, nprobe {new_dense['dense_nprobe']})"
                           if new_dense["dense_kind"] == "ivf" else ""))
        if new_kw:
            done.append("keyword: rebuilt")
        if purged:
            done.append(f"purged {purged} deleted passages")
        return MaintenanceReport(gen, tuple(done))
    finally:
        clock.release()


def _publish(backend: DirBackend, c: st.Commit, new_dense: dict | None, new_kw: str | None) -> int:
    """Publish a compaction (under the writer lock)."""
    conn = st.connect(backend.path / layout.STORE, write=True)
    try:
        recover(backend, conn)
        latest = st.latest_commit(conn)
        fields = {}
        if new_kw:
            # Catch up with the writes published after the build's generation.
            index = kw.open_index(backend.path / new_kw)
            w = kw.KeywordWriter(index)
            _add_rows(conn, w, "added_gen > :lo AND " + st.VISIBLE, {"lo": c.gen, "g": latest.gen}, latest.gen)
            w.delete_rows(r for (r,) in conn.execute(
                "SELECT id FROM passages WHERE added_gen <= ? AND deleted_gen > ? AND deleted_gen <= ?",
                (c.gen, c.gen, latest.gen)))
            fields.update(keyword_dir=new_kw, keyword_opstamp=w.commit())
        if new_dense:
            fields.update({k: v for k, v in new_dense.items() if not k.startswith("_")})
        gen = latest.gen + 1
        conn.execute("BEGIN IMMEDIATE")
        st.insert_commit(conn, replace(latest, gen=gen, created_at=_now(), **fields))
        if new_kw:
            st.set_meta(conn, "keyword_deletes_applied", gen)
            st.set_meta(conn, "keyword_deleted", 0)
            st.set_meta(conn, "keyword_docs", latest.passages)
        if new_dense:
            st.set_meta(conn, "dense_base_size", new_dense["_size"])
            st.set_meta(conn, "dense_trained_n", new_dense["_trained"])
        conn.execute("COMMIT")
        return gen
    finally:
        conn.close()


def _purge(backend: DirBackend) -> int:
    """Delete rows that no base, keyword index or recent reader needs."""
    age = backend.options.gc_age_s
    conn = st.connect(backend.path / layout.STORE, write=True)
    try:
        c = st.latest_commit(conn)
        applied = int(st.get_meta(conn, "keyword_deletes_applied", "0"))
        old = conn.execute("SELECT max(gen) FROM commits WHERE created_at <= ?", (gc_cutoff(age),)).fetchone()[0]
        limit = min(c.dense_base_gen, applied, c.gen - 2, old if old is not None else -1)
        if limit <= 0:
            return 0
        conn.execute("BEGIN IMMEDIATE")
        n = conn.execute("DELETE FROM passages WHERE deleted_gen <= ?", (limit,)).rowcount
        conn.execute("DELETE FROM paragraphs WHERE article_key IN (SELECT article_key FROM articles "
                     "WHERE deleted_gen <= ?)", (limit,))
        conn.execute("DELETE FROM articles WHERE deleted_gen <= ?", (limit,))
        conn.execute("COMMIT")
        return n
    finally:
        conn.close()


def _gc(backend: DirBackend) -> None:
    """Remove keyword folders and base files none of the last two commits name."""
    conn = st.connect(backend.path / layout.STORE)
    try:
        keep = set()
        for kdir, base in conn.execute("SELECT keyword_dir, dense_base FROM commits ORDER BY gen DESC LIMIT 2"):
            keep.update({kdir, base})
    finally:
        conn.close()
    cutoff = time.time() - backend.options.gc_age_s
    candidates = list(backend.path.glob(f"{layout.KEYWORD_PREFIX}*")) + list((backend.path / layout.DENSE_DIR).glob("*"))
    for p in candidates:
        rel = p.relative_to(backend.path).as_posix()
        with contextlib.suppress(OSError):
            if rel not in keep and p.stat().st_mtime <= cutoff:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
