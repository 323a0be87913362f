"""The index dir (format 2): writes in O(change), reads that never lock.

A write (``DirWriteSession``), one per ``wenda ingest``, POST or DELETE:

0. Take ``LOCK`` (HTTP: without waiting, else ``IndexBusyError``), write
   ``WRITER.json``, and run ``recover()``.
1. The build side prepares articles (split, terms, vectors) outside any lock
   that readers see; ``put``/``delete`` stream rows into one SQLite
   transaction (WAL: readers keep reading the last commit) and documents
   into a tantivy writer.
2. ``commit``: tantivy commits its adds, then one SQLite COMMIT inserts the
   ``commits`` row: the write is now visible, atomically, to every process.
3. The rows it removed are then deleted from tantivy; until that is done a
   reader filters them out (its ``pending`` set).

A reader (``DirSnapshot``) reads the latest commit row *first* and reloads
tantivy *after*, so its searcher holds at least that generation's adds; it
filters out what it may hold beyond (rows past ``max_rowid``, ``pending``).
If a newer generation was published while it reloaded, it starts again with
that one, so it never mixes two. Crash points and their recovery: ``recover``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from .. import contract
from ..backend import Counts, MaintenanceReport, PreparedArticle, Scored, WriteReceipt, busy_error
from ..contract import Manifest
from ..errors import IndexBusyError, IndexMismatchError, IndexNotFoundError, NotFoundError
from ..models import Article, Paragraph, Passage
from . import dense as dn
from . import keyword as kw
from . import layout
from . import store as st

#: A reader merges its delta chunks into one when it holds more than this many.
MAX_CHUNKS = 8
#: Files of the index that no recent commit names are removed after this long
#: (a reader in another process may still be opening them).
GC_AGE_S = 600.0


@dataclass(frozen=True)
class DirOptions:
    """Knobs of the index dir (``Settings`` fills them at the edge).

    Args:
        dense: flat/IVF thresholds and compaction triggers.
        keyword_rebuild_deleted: rebuild the tantivy index when more than this
            share of its documents are deleted (tantivy counts deleted
            documents in IDF until a merge, and tantivy-py cannot set a merge
            policy; at 10% deleted the top-10 overlap with a clean index was
            0.9965, scratch/scale/tantivy_drift.py).
        gc_age_s: see ``GC_AGE_S``.
    """

    dense: dn.DenseSettings = field(default_factory=dn.DenseSettings)
    keyword_rebuild_deleted: float = 0.10
    gc_age_s: float = GC_AGE_S


# ---- locks shared by every backend object of one process -------------------------------------
_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()
_HOLDER: dict[str, str] = {}  # realpath -> kind of the write holding this process's lock
#: A write that finds a compaction publishing waits this long instead of
#: being refused: the publish holds the lock for milliseconds.
MAINTAIN_WAIT_S = 10.0


def _process_lock(path: Path) -> threading.Lock:
    key = os.path.realpath(path)
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(key, threading.Lock())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _holder_kind(index_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((index_dir / layout.WRITER).read_text(encoding="utf-8")).get("kind")
    return None


def _busy(index_dir: Path) -> IndexBusyError:
    """The busy error, with the holder's progress from WRITER.json when it tells it."""
    info = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((index_dir / layout.WRITER).read_text(encoding="utf-8"))
    return busy_error(str(index_dir), info)


class DirBackend:
    """An index directory as a ``Backend``.

    Args:
        path: the index directory (created by the first write).
        options: see ``DirOptions``.
    """

    def __init__(self, path: str | os.PathLike, options: DirOptions | None = None) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.options = options or DirOptions()
        self._local = threading.local()
        self._build_lock = threading.Lock()
        self._snap: DirSnapshot | None = None
        self._kw: tuple[str, object] | None = None  # (folder name, tantivy Index) of the last snapshot

    # ---- reading the latest commit ------------------------------------------------------------
    def _read_conn(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if layout.format_of(self.path) != 2 or not (self.path / layout.STORE).is_file():
                return None
            conn = st.connect(self.path / layout.STORE)
            self._local.conn = conn
        return conn

    def _require_format_2(self) -> None:
        fmt = layout.format_of(self.path)
        if fmt == 1:
            raise IndexMismatchError(
                f"The index at {self.path} is in wenda's older format (1); run 'wenda ingest' once to convert it "
                "(nothing is re-embedded).")

    def latest(self) -> st.Commit | None:
        self._require_format_2()
        conn = self._read_conn()
        return st.latest_commit(conn) if conn is not None else None

    def generation(self) -> int:
        """The latest published generation (0: none); cheap, for polling."""
        conn = self._read_conn()
        return st.latest_gen(conn) if conn is not None else 0

    def manifest(self) -> Manifest | None:
        c = self.latest()
        return Manifest.from_json(c.manifest) if c else None

    def stats(self) -> dict | None:
        """Generation, counts and bytes on disk of the latest commit (None: no index)."""
        c = self.latest()
        if c is None:
            return None
        size = 0
        for p in self.path.rglob("*"):
            with contextlib.suppress(OSError):
                if p.is_file():
                    size += p.stat().st_size
        return {"generation": c.gen, "counts": {"articles": c.articles, "passages": c.passages}, "bytes": size}

    def write_manifest_copy(self, commit: st.Commit | None = None) -> None:
        """``manifest.json``: a readable copy of a commit's manifest (never read for correctness)."""
        if commit is None:
            conn = st.connect(self.path / layout.STORE)
            try:
                commit = st.latest_commit(conn)
            finally:
                conn.close()
        if commit is None:
            return
        with contextlib.suppress(OSError):
            layout.write_atomic(self.path / layout.MANIFEST, json.dumps(
                json.loads(commit.manifest), ensure_ascii=False, indent=2).encode())

    def exists(self) -> bool:
        return layout.format_of(self.path) is not None

    # ---- snapshots ----------------------------------------------------------------------------
    def snapshot(self) -> DirSnapshot:
        """The latest published state, built incrementally from the previous one.

        Raises:
            IndexNotFoundError: nothing was published here yet.
            IndexMismatchError: an index of the older format (1).
        """
        c = self.latest()
        if c is None:
            raise IndexNotFoundError(f"No index at {self.path}. Run 'wenda ingest' first or set WENDA_INDEX_DIR.")
        prev = self._snap
        if prev is not None and prev.generation == c.gen:
            return prev
        with self._build_lock:
            for _ in range(10):
                snap = self._build(c)
                if snap is not None:
                    self._snap = snap
                    return snap
                c = self.latest()
            raise RuntimeError(f"the index at {self.path} kept changing while a snapshot was opened")

    def _keyword_index(self, name: str):
        if self._kw is None or self._kw[0] != name:
            self._kw = (name, kw.open_index(self.path / name))
        return self._kw[1]

    def _build(self, c: st.Commit) -> DirSnapshot | None:
        conn = self._read_conn()
        prev = self._snap if self._snap is not None and self._snap.generation < c.gen else None
        applied = int(st.get_meta(conn, "keyword_deletes_applied", "0"))
        pending = frozenset(st.rows_deleted_between(conn, applied, c.gen))
        index = self._keyword_index(c.keyword_dir)
        index.reload()
        searcher = index.searcher()
        if st.latest_gen(conn) != c.gen:
            return None  # a newer write was published meanwhile (its deletes may be in the searcher): again
        manifest = Manifest.from_json(c.manifest)
        dim = manifest.dim
        # Dense: the base file, the delta (rows after the base) and the dead rows.
        if prev is not None and prev.commit.dense_base == c.dense_base:
            base = prev.dense.base
            new_ids, new_vecs = st.vectors_of_rows(
                conn, f"p.id > :lo AND p.id <= :hi AND {st._P_VISIBLE}",
                {"lo": prev.commit.max_rowid, "hi": c.max_rowid, "g": c.gen}, dim)
            chunks = prev.dense.chunks + ((dn.flat(new_ids, new_vecs, dim),) if len(new_ids) else ())
            if len(chunks) > MAX_CHUNKS:
                chunks = self._delta(conn, c, dim)
        else:
            base = dn.read_base(self.path / c.dense_base, c.dense_kind) if c.dense_base else None
            chunks = self._delta(conn, c, dim)
        dead = st.rows_deleted_between(conn, c.dense_base_gen, c.gen)
        view = dn.DenseView(dim, base, c.dense_kind, c.dense_nprobe, chunks, np.asarray(dead, np.int64))
        return DirSnapshot(self, c, manifest, searcher, pending, view)

    def _delta(self, conn, c: st.Commit, dim: int) -> tuple:
        ids, vecs = st.vectors_of_rows(conn, f"p.id > :lo AND p.id <= :hi AND {st._P_VISIBLE}",
                                       {"lo": c.dense_base_max_rowid, "hi": c.max_rowid, "g": c.gen}, dim)
        return (dn.flat(ids, vecs, dim),) if len(ids) else ()

    # ---- writing ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, *, wait: float = 0.0, kind: str = "write", total: int | None = None) -> Iterator[None]:
        """Hold the writer lock: first this process's, then the flock on LOCK.

        Raises:
            IndexBusyError: another writer holds it past ``wait`` seconds.
        """
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.path)
        plock = _process_lock(self.path)
        got = plock.acquire(blocking=wait > 0, timeout=wait if wait > 0 else -1)
        if not got and _HOLDER.get(key) == "maintain":
            got = plock.acquire(timeout=MAINTAIN_WAIT_S)
        if not got:
            raise _busy(self.path)
        _HOLDER[key] = kind
        try:
            t0 = time.monotonic()
            # thread_local=False: the lock belongs to the write, which may move
            # between threads in a server; the file stays for the next writer
            # (older wenda versions took a plain flock on it).
            flock = FileLock(self.path / layout.LOCK, timeout=max(0.0, wait - (time.monotonic() - t0)),
                             thread_local=False, preserve_lock_file=True)
            try:
                flock.acquire()
            except Timeout:
                if _holder_kind(self.path) != "maintain":
                    raise _busy(self.path) from None
                try:
                    flock.acquire(timeout=MAINTAIN_WAIT_S)
                except Timeout:
                    raise _busy(self.path) from None
            try:
                self._writer_info = {"pid": os.getpid(), "kind": kind, "started": time.time(), "done": 0,
                                     "total": total}
                self._writer_info_at = 0.0
                self._write_writer_info()
                yield
            finally:
                with contextlib.suppress(OSError):
                    (self.path / layout.WRITER).unlink()
                flock.release()
        finally:
            _HOLDER.pop(key, None)
            plock.release()

    def _write_writer_info(self) -> None:
        # Advisory (it only words a busy message): replaced atomically, never fsynced.
        with contextlib.suppress(OSError):
            tmp = self.path / f".{layout.WRITER}.tmp-{os.getpid()}"
            tmp.write_text(json.dumps(self._writer_info), encoding="utf-8")
            os.replace(tmp, self.path / layout.WRITER)

    def tell_progress(self, done: int) -> None:
        """Record how far the lock holder is (at most once a second), for busy messages."""
        info = getattr(self, "_writer_info", None)
        if info is None:
            return
        info["done"] = done
        if time.monotonic() - self._writer_info_at >= 1.0:
            self._writer_info_at = time.monotonic()
            self._write_writer_info()

    def _write_conn(self) -> sqlite3.Connection:
        conn = st.connect(self.path / layout.STORE, write=True)
        st.create(conn)
        return conn

    def _init_format(self) -> None:
        if not (self.path / layout.FORMAT).is_file():
            self._write_conn().close()
            layout.write_atomic(self.path / layout.FORMAT, layout.FORMAT_TEXT.encode())

    @contextlib.contextmanager
    def writer(self, *, manifest: Manifest, wait: float = 0.0, kind: str = "write", total: int | None = None,
               rebuild: bool = False) -> Iterator[DirWriteSession]:
        """A write session under the writer lock; leaving it without ``commit()`` rolls back.

        Args:
            manifest: what the writer builds with (model, dimension, splitter, tokenizer).
            wait: seconds to wait for another writer (0: refuse at once).
            kind / total: shown to a writer refused meanwhile.
            rebuild: start from an empty index (any model).

        Raises:
            IndexBusyError: another writer holds the lock.
            IndexMismatchError: the index was built with another model, dimension or splitter.
        """
        with self.locked(wait=wait, kind=kind, total=total):
            notes: list[str] = []
            if layout.format_of(self.path) == 1:
                from . import v1

                if rebuild:
                    v1.remove(self.path)
                else:
                    notes.append(v1.convert(self, manifest))
            self._init_format()
            conn = self._write_conn()
            try:
                recover(self, conn)
                prev = st.latest_commit(conn)
                if prev is not None and not rebuild:
                    contract.check_compatible(Manifest.from_json(prev.manifest), model_id=manifest.embed_model,
                                              dim=manifest.dim, splitter=_splitter(manifest))
                session = DirWriteSession(self, conn, prev, manifest, rebuild=rebuild, notes=notes)
                try:
                    yield session
                finally:
                    session.close()
            finally:
                conn.close()

    # ---- maintenance --------------------------------------------------------------------------
    def maintenance_due(self) -> list[str]:
        """The parts whose compaction trigger fired (empty: nothing to do)."""
        from .compact import due

        c = self.latest()
        if c is None:
            return []
        conn = self._read_conn()
        return due(self, conn, c)

    def maintain(self, *, force: bool = False, wait: float = 30.0) -> MaintenanceReport:
        """Compact the dense and keyword sides when due (or ``force``), purge
        old rows and remove files no commit names (see ``compact.py``)."""
        from .compact import maintain

        return maintain(self, force=force, wait=wait)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._snap = None
        self._kw = None


def _splitter(manifest: Manifest):
    from ..splitter import SplitterSettings

    return SplitterSettings(**manifest.splitter)


# ---- recovery ------------------------------------------------------------------------------------
def recover(backend: DirBackend, conn: sqlite3.Connection) -> None:
    """Make tantivy agree with the last commit after a crash (under LOCK).

    | crash point                              | left behind                        | done here |
    | before the tantivy commit                | nothing (SQLite rolls back)        | nothing |
    | after the tantivy commit, before COMMIT  | tantivy docs of gen G+1            | delete them by ``gen`` |
    | after COMMIT, before the tantivy deletes | removed rows still in tantivy      | delete them again (idempotent) |
    """
    c = st.latest_commit(conn)
    if c is None:
        return  # a first write that died left at most an unnamed keyword folder: GC removes it
    index = kw.open_index(backend.path / c.keyword_dir)
    index.reload()
    if kw.has_gen(index.searcher(), c.gen + 1):  # a write died after its tantivy commit (its gen is G+1)
        w = kw.KeywordWriter(index)
        w.delete_gen(c.gen + 1)
        w.commit()
    applied = int(st.get_meta(conn, "keyword_deletes_applied", "0"))
    if applied < c.gen:
        rows = st.rows_deleted_between(conn, applied, c.gen)
        if rows:
            w = kw.KeywordWriter(index)
            w.delete_rows(rows)
            w.commit()
        st.set_meta(conn, "keyword_deletes_applied", c.gen)


# ---- the write session ------------------------------------------------------------------------------
class DirWriteSession:
    """One write: rows stream into one SQLite transaction and one tantivy writer.

    Use through ``DirBackend.writer``. ``commit()`` publishes; anything else rolls back.
    """

    def __init__(self, backend: DirBackend, conn: sqlite3.Connection, prev: st.Commit | None, manifest: Manifest,
                 *, rebuild: bool, notes: list[str]) -> None:
        self.backend, self.conn, self.prev, self.manifest = backend, conn, prev, manifest
        self.rebuild = rebuild
        self.notes = notes
        self.gen = (prev.gen if prev else 0) + 1
        self.recut = prev is not None and not rebuild and Manifest.from_json(prev.manifest).tokenizer != manifest.tokenizer
        self.new_keyword_dir = prev is None or rebuild or self.recut
        self.keyword_dir = (f"{layout.KEYWORD_PREFIX}{self.gen:06d}-{uuid.uuid4().hex[:6]}" if self.new_keyword_dir
                            else prev.keyword_dir)
        self.keyword_index = kw.open_index(backend.path / self.keyword_dir, create=self.new_keyword_dir)
        self._kw_writer: kw.KeywordWriter | None = None
        conn.execute("BEGIN IMMEDIATE")
        self.max_rowid_before = int(conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0])
        self.added: list[str] = []
        self.replaced: list[str] = []
        self.deleted: list[str] = []
        self.removed_rows: list[int] = []
        self.added_rows = 0
        self.articles_delta = 0
        self.committed = False
        self.receipt: WriteReceipt | None = None
        if rebuild and prev is not None:
            for (key,) in conn.execute("SELECT article_key FROM articles WHERE deleted_gen IS NULL").fetchall():
                self.removed_rows += st.mark_deleted(conn, key, self.gen)
                self.articles_delta -= 1
        self.passages_recut = self._recut() if self.recut else 0

    # ---- reads inside the write ----
    def content_hash(self, article_id: str) -> str | None:
        live = st.live_article(self.conn, article_id)
        return live[1] if live else None

    def cached_vectors(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        return st.cached_vectors(self.conn, keys)

    # ---- changes ----
    def _kw(self) -> kw.KeywordWriter:
        if self._kw_writer is None:
            self._kw_writer = kw.KeywordWriter(self.keyword_index)
        return self._kw_writer

    def put(self, item: PreparedArticle) -> None:
        """Add an article, or replace the live version of its id."""
        live = st.live_article(self.conn, item.article.article_id)
        if live is not None:
            self.removed_rows += st.mark_deleted(self.conn, live[0], self.gen)
            self.replaced.append(item.article.article_id)
        else:
            self.added.append(item.article.article_id)
            self.articles_delta += 1
        vids = st.put_vectors(self.conn, item.vector_keys, item.vectors)
        key = st.insert_article(self.conn, item.article, item.content_hash, _now(), self.gen, item.paragraphs)
        rows = st.insert_passages(self.conn, key, item.passages, item.terms, vids, self.gen)
        self._kw().add(rows, item.terms, self.gen)
        self.added_rows += len(rows)

    def delete(self, article_id: str) -> None:
        """Remove an article.

        Raises:
            NotFoundError: it is not in the index.
        """
        live = st.live_article(self.conn, article_id)
        if live is None:
            raise NotFoundError(f"No article {article_id!r} in the index; 'wenda info' lists the articles.")
        self.removed_rows += st.mark_deleted(self.conn, live[0], self.gen)
        self.deleted.append(article_id)
        self.articles_delta -= 1

    def _recut(self) -> int:
        """Re-cut the terms of every live passage (a new tokenizer); the new
        keyword folder is then filled from them at commit."""
        rows = self.conn.execute(f"{st._SELECT_PASSAGES} WHERE p.deleted_gen IS NULL").fetchall()
        self.conn.executemany("UPDATE passages SET terms = ? WHERE id = ?",
                              [(" ".join(contract.terms_for(p)), rid) for rid, p in map(st._passage, rows)])
        return len(rows)

    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.deleted or self.passages_recut or self.rebuild
                    or self.prev is None and self.added_rows)

    def commit(self) -> WriteReceipt:
        """Publish the write as one new generation (nothing when nothing changed)."""
        prev = self.prev
        if not self.changed():
            self._rollback()
            c = prev
            self.receipt = WriteReceipt(generation=c.gen if c else 0,
                                        counts=Counts(c.articles, c.passages) if c else Counts(0, 0))
            self.committed = True
            return self.receipt
        conn, gen = self.conn, self.gen
        if self.new_keyword_dir and prev is not None:
            # A re-cut fills the new folder with the passages kept from before this write.
            old = conn.execute(f"SELECT id, terms FROM passages WHERE added_gen < :g AND {st.VISIBLE}",
                               {"g": gen}).fetchall()
            self._kw().add([r for r, _ in old], [t.split(" ") if t else [] for _, t in old], gen)
        _crash_point("before_keyword_commit")
        opstamp = self._kw().commit() if self._kw_writer is not None or self.new_keyword_dir else \
            (prev.keyword_opstamp if prev else 0)
        self._kw_writer = None
        max_rowid = int(conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0])
        counts = Counts((prev.articles if prev else 0) + self.articles_delta,
                        (prev.passages if prev else 0) + self.added_rows - len(self.removed_rows))
        fresh_dense = prev is None or self.rebuild
        commit = st.Commit(
            gen=gen, created_at=_now(), max_rowid=max_rowid, keyword_dir=self.keyword_dir, keyword_opstamp=opstamp,
            dense_kind="flat" if fresh_dense else prev.dense_kind,
            dense_base=None if fresh_dense else prev.dense_base,
            dense_base_gen=gen if fresh_dense else prev.dense_base_gen,
            dense_base_max_rowid=self.max_rowid_before if fresh_dense else prev.dense_base_max_rowid,
            dense_nlist=None if fresh_dense else prev.dense_nlist,
            dense_nprobe=None if fresh_dense else prev.dense_nprobe,
            articles=counts.articles, passages=counts.passages,
            manifest=self.manifest.to_json() if (fresh_dense or self.recut) else prev.manifest)
        st.insert_commit(conn, commit)
        if self.new_keyword_dir:
            st.set_meta(conn, "keyword_deletes_applied", gen)
            st.set_meta(conn, "keyword_deleted", 0)
            st.set_meta(conn, "keyword_docs", counts.passages)
        else:
            st.set_meta(conn, "keyword_deleted", int(st.get_meta(conn, "keyword_deleted", "0")) + len(self.removed_rows))
            st.set_meta(conn, "keyword_docs", int(st.get_meta(conn, "keyword_docs", "0")) + self.added_rows)
        _crash_point("before_publish")
        conn.execute("COMMIT")  # <- published: every process sees the new generation from here on
        self.committed = True
        _crash_point("after_publish")
        if not self.new_keyword_dir and self.removed_rows:
            w = kw.KeywordWriter(self.keyword_index)
            w.delete_rows(self.removed_rows)
            w.commit()
        st.set_meta(conn, "keyword_deletes_applied", gen)
        if prev is None or commit.manifest != prev.manifest:
            self.backend.write_manifest_copy(commit)
        self.receipt = WriteReceipt(generation=gen, added=tuple(self.added), replaced=tuple(self.replaced),
                                    deleted=tuple(self.deleted), passages_added=self.added_rows,
                                    passages_removed=len(self.removed_rows), counts=counts)
        return self.receipt

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if self._kw_writer is not None:
            self._kw_writer.rollback()
            self._kw_writer = None
        if self.new_keyword_dir:
            shutil.rmtree(self.backend.path / self.keyword_dir, ignore_errors=True)

    def close(self) -> None:
        if not self.committed:
            self._rollback()


#: Fault injection for the crash tests: a test sets a name here and the write
#: dies there (``os._exit`` in a child process).
CRASH_AT: set[str] = set()


def _crash_point(name: str) -> None:
    if name in CRASH_AT:
        os._exit(86)


# ---- the snapshot ------------------------------------------------------------------------------------
class DirSnapshot:
    """One published generation of an index dir; immutable, shared by threads."""

    def __init__(self, backend: DirBackend, commit: st.Commit, manifest: Manifest, searcher, pending: frozenset,
                 dense: dn.DenseView) -> None:
        self.backend, self.commit, self.manifest = backend, commit, manifest
        self.generation = commit.gen
        self.counts = Counts(commit.articles, commit.passages)
        self.dense_kind = commit.dense_kind
        self.created_at = commit.created_at
        self.searcher, self.pending, self.dense = searcher, pending, dense

    def _conn(self) -> sqlite3.Connection:
        conn = self.backend._read_conn()
        if conn is None:
            raise IndexNotFoundError(f"No index at {self.backend.path}. Run 'wenda ingest' first.")
        return conn

    def dense_topk(self, vector: np.ndarray, k: int) -> list[Scored]:
        return [Scored(r, s) for r, s in self.dense.search(vector, k)]

    def keyword_topk(self, terms: Sequence[str], k: int) -> list[Scored]:
        """BM25 top ``k``; documents the generation does not show (a write in
        flight, deletes not yet applied) are filtered out, ties cut by row id."""
        terms = contract.clean_terms(terms)
        if not terms or k <= 0:
            return []
        n = k + len(self.pending) + 10
        for _ in range(4):
            hits = kw.search(self.searcher, terms, n)
            kept = [(r, s) for r, s in hits if r <= self.commit.max_rowid and r not in self.pending and s > 0]
            if len(kept) >= k or len(hits) < n:
                break
            n *= 2
        kept.sort(key=lambda h: (-h[1], h[0]))
        return [Scored(r, s) for r, s in kept[:k]]

    def doc_freq(self, term: str) -> int:
        return kw.doc_freq(self.searcher, term)

    def passages(self, rows: Sequence[int]) -> dict[int, Passage]:
        return st.passages_by_rowid(self._conn(), rows)

    def passage(self, passage_id: str) -> Passage | None:
        return st.passage_at(self._conn(), self.generation, passage_id)

    def article(self, article_id: str) -> tuple[Article, list[Paragraph]] | None:
        return st.article_at(self._conn(), self.generation, article_id)

    def article_ids(self, *, limit: int = 1000, offset: int = 0) -> list[str]:
        return st.article_ids_at(self._conn(), self.generation, limit=limit, offset=offset)

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, vectors) of every passage visible here (for migration and tests)."""
        return st.vectors_of_rows(self._conn(), st._P_VISIBLE, {"g": self.generation}, self.manifest.dim)

    def stored_terms(self) -> dict[int, list[str]]:
        return dict(self.iter_terms())

    def iter_terms(self) -> Iterator[tuple[int, list[str]]]:
        """(row id, BM25 terms) of every passage visible here, streamed in row order."""
        cur = self._conn().execute(f"SELECT id, terms FROM passages WHERE {st.VISIBLE} ORDER BY id",
                                   {"g": self.generation})
        while rows := cur.fetchmany(10_000):
            for r, t in rows:
                yield r, (t.split(" ") if t else [])

    def average_terms(self) -> float:
        """The average number of BM25 terms a passage holds here."""
        row = self._conn().execute(
            "SELECT avg(CASE WHEN terms = '' THEN 0 ELSE length(terms) - length(replace(terms, ' ', '')) + 1 END) "
            f"FROM passages WHERE {st.VISIBLE}", {"g": self.generation}).fetchone()
        return float(row[0] or 0.0)

    def export(self) -> Iterator[PreparedArticle]:
        """Every article visible here with its paragraphs, passages, terms and
        stored vectors, as a write session takes them (``wenda migrate``)."""
        conn = self._conn()
        dim = self.manifest.dim
        keys = [r[0] for r in conn.execute(f"SELECT article_key FROM articles WHERE {st.VISIBLE} ORDER BY article_key",
                                           {"g": self.generation})]
        for key in keys:
            row = conn.execute("SELECT article_id, title, text, date, source, url, path, content_hash FROM articles "
                               "WHERE article_key = ?", (key,)).fetchone()
            article = Article(*row[:7])
            paras = [Paragraph(article.article_id, p, sec, s, e, article.text[s:e], bool(h)) for p, sec, s, e, h in
                     conn.execute('SELECT paragraph, section, start, "end", is_heading FROM paragraphs '
                                  "WHERE article_key = ? ORDER BY paragraph", (key,))]
            rows = conn.execute('SELECT p.passage_id, p.section, p.paragraph, p.part, p.start, p."end", p.text, '
                                "p.terms, v.content_hash, v.vec FROM passages p JOIN vectors v ON v.id = p.vector_id "
                                "WHERE p.article_key = ? ORDER BY p.id", (key,)).fetchall()
            passages = tuple(Passage(pid, article.article_id, article.title, sec, para, part, s, e, text)
                             for pid, sec, para, part, s, e, text, *_ in rows)
            vecs = (np.frombuffer(b"".join(r[9] for r in rows), np.float32).reshape(len(rows), dim) if rows
                    else np.zeros((0, dim), np.float32))
            yield PreparedArticle(article, row[7], tuple(paras), passages,
                                  tuple(tuple(r[7].split(" ")) if r[7] else () for r in rows), vecs,
                                  tuple(bytes(r[8]) for r in rows))

    def close(self) -> None:
        """Nothing to release: the parts go when the last user drops them."""


def gc_cutoff(age_s: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=age_s)).isoformat(timespec="seconds")


__all__ = ["DirBackend", "DirOptions", "DirSnapshot", "DirWriteSession", "recover", "replace"]
