"""PostgreSQL as a ``Backend``: several ``wenda serve`` processes (on several
machines) share one database and see each other's writes at once.

* A write is one transaction (a failed ingest leaves nothing; deletes
  cascade) under ``pg_try_advisory_lock``: a second writer is refused at once
  (or, with ``wait``, retries until then), like the index dir.
* A snapshot is one pooled connection in a ``REPEATABLE READ READ ONLY``
  transaction, held for one request: dense, keyword, statistics and fetches
  all see one state; it is released by ``close()``.
* Dense: pgvector HNSW (inner product). HNSW returns at most ``hnsw.ef_search``
  rows (with the default 40, ``LIMIT 50`` gave 40): connections set it to
  ``ef_search`` and use iterative scans, and results are re-sorted here.
* Keyword: candidates from the query terms' champion lists, then the exact
  sparse dot product of the passage's BM25 weights with the query's IDF
  (``schema.py``). Settings are session-level only: psycopg prepares a
  statement after 5 runs and a prepared plan ignored ``SET LOCAL`` (issue 11).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .. import contract
from ..backend import Counts, MaintenanceReport, PreparedArticle, Scored, WriteReceipt, busy_error
from ..contract import BM25, Manifest
from ..errors import IndexMismatchError, IndexNotFoundError, ModelUnavailableError, NotFoundError
from ..models import Article, Paragraph, Passage
from . import schema

#: sparsevec dimension: term ids are below it.
SPARSE_DIM = 1_000_000_000
#: ``hashtextextended('wenda:write', 0)``: the advisory lock every writer takes.
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended('wenda:write', 0))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended('wenda:write', 0))"
#: The stored weights are re-computed when the average length drifts this far
#: from the one they were computed with (inline while the corpus is this small).
REWEIGHT_DRIFT = 0.05
REWEIGHT_INLINE_MAX = 20_000


@dataclass(frozen=True)
class PgOptions:
    """Knobs of the PostgreSQL backend.

    Args:
        ef_search: HNSW candidate list (must be >= k; 100 gave recall@10 0.989 at 20k).
        champions: postings kept per term for keyword candidates (M).
        candidates: keyword candidates re-scored exactly.
        pool_size: connections a process keeps.
    """

    ef_search: int = 100
    champions: int = 200
    candidates: int = 200
    pool_size: int = 8


def _deps():
    try:
        import psycopg
        from pgvector import SparseVector
        from pgvector.psycopg import register_vector
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise ModelUnavailableError("PostgreSQL support is not installed; pip install 'wenda[pg]'") from exc
    return psycopg, register_vector, SparseVector, ConnectionPool


def redact(url: str) -> str:
    """The URL without its password (for messages and ``location``)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def impact(tf: int, dl: int, avgdl: float) -> float:
    """BM25's tf part, Lucene's form with the (k1 + 1) factor (as tantivy)."""
    k1, b = BM25.k1, BM25.b
    return tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / max(avgdl, 1e-9)))


def idf(n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


class PgBackend:
    """A PostgreSQL database as a ``Backend``.

    Args:
        url: ``postgresql://user:pass@host:port/db`` (or with ``?host=/socket/dir``).
        options: see ``PgOptions``.
    """

    def __init__(self, url: str, options: PgOptions | None = None) -> None:
        self.url = url
        self.location = redact(url)
        self.options = options or PgOptions()
        self._pool = None
        self._pool_lock = threading.Lock()
        self._manifest: tuple[int, Manifest] | None = None

    # ---- connections ----------------------------------------------------------------------
    def connect(self, *, autocommit: bool = True):
        psycopg, register_vector, _, _ = _deps()
        try:
            conn = psycopg.connect(self.url, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise IndexNotFoundError(f"Cannot connect to PostgreSQL at {self.location}: "
                                     f"{str(exc).strip().splitlines()[0]}") from None
        return conn

    def _configure(self, conn) -> None:
        _, register_vector, _, _ = _deps()
        if conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0]:
            register_vector(conn)
        conn.execute(f"SET hnsw.ef_search = {int(self.options.ef_search)}")
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        conn.execute("SET statement_timeout = '30s'")
        conn.commit()

    def pool(self):
        with self._pool_lock:
            if self._pool is None:
                _, _, _, ConnectionPool = _deps()
                self.connect().close()  # a clear error when the server cannot be reached
                self._pool = ConnectionPool(self.url, min_size=1, max_size=self.options.pool_size,
                                            configure=self._configure, open=True,
                                            kwargs={"prepare_threshold": None})
            return self._pool

    # ---- the state --------------------------------------------------------------------------
    def _state(self, conn) -> tuple | None:
        if not schema.has_schema(conn):
            return None
        schema.check_schema(conn)
        return conn.execute("SELECT generation, n_articles, n_passages, total_terms, ref_avgdl FROM wenda_state"
                            ).fetchone()

    def generation(self) -> int:
        """The latest published generation (0: none); one small query."""
        with self.pool().connection() as conn:
            st = self._state(conn)
            return int(st[0]) if st else 0

    def manifest(self) -> Manifest | None:
        with self.pool().connection() as conn:
            if not schema.has_schema(conn):
                return None
            schema.check_schema(conn)
            row = conn.execute("SELECT value FROM wenda_meta WHERE key = 'manifest'").fetchone()
            return Manifest.from_json(row[0]) if row else None

    def stats(self) -> dict | None:
        with self.pool().connection() as conn:
            st = self._state(conn)
            if not st or not st[0]:
                return None
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            return {"generation": int(st[0]), "counts": {"articles": int(st[1]), "passages": int(st[2])},
                    "bytes": int(size)}

    def exists(self) -> bool:
        return self.generation() > 0

    # ---- reads ------------------------------------------------------------------------------
    def snapshot(self) -> PgSnapshot:
        """A consistent read-only view for one request; ``close()`` it after.

        Raises:
            IndexNotFoundError: nothing was written to this database yet.
        """
        pool = self.pool()
        conn = pool.getconn()
        try:
            conn.autocommit = True
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            st = self._state(conn)
            if not st or not st[0]:
                raise IndexNotFoundError(f"No index at {self.location}. Run 'wenda --store URL ingest' first.")
            manifest = self._manifest_at(conn, int(st[0]))
            return PgSnapshot(self, conn, int(st[0]), Counts(int(st[1]), int(st[2])), manifest)
        except BaseException:
            _release(pool, conn)
            raise

    def _manifest_at(self, conn, gen: int) -> Manifest:
        cached = self._manifest
        if cached is None or cached[0] != gen:
            row = conn.execute("SELECT value FROM wenda_meta WHERE key = 'manifest'").fetchone()
            cached = (gen, Manifest.from_json(row[0]))
            self._manifest = cached
        return cached[1]

    # ---- writes -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, *, manifest: Manifest, wait: float = 0.0, kind: str = "write", total: int | None = None,
               rebuild: bool = False) -> Iterator[PgWriteSession]:
        """A write session: one transaction under the advisory write lock.

        Raises:
            IndexBusyError: another writer holds the lock past ``wait`` seconds.
            IndexMismatchError: another model, dimension or splitter; a newer schema.
        """
        conn = self.connect(autocommit=True)
        try:
            deadline = time.monotonic() + wait
            while not conn.execute(LOCK_SQL).fetchone()[0]:
                if time.monotonic() >= deadline:
                    raise busy_error(self.location, self._holder(conn))
                time.sleep(0.1)
            self._writer = (conn, {"kind": kind, "started": time.time(), "done": 0, "total": total}, [0.0])
            self._tell(force=True)
            try:
                conn.autocommit = False
                session = self._open_session(conn, manifest, rebuild)
                try:
                    yield session
                finally:
                    session.close()
            finally:
                self._writer = None
                if not conn.closed:
                    conn.rollback()
                    conn.autocommit = True
                    conn.execute(UNLOCK_SQL)
        finally:
            conn.close()

    # The lock holder's progress is its connection's application_name, which
    # pg_stat_activity shows to every session at once (a table row would not
    # be seen until the write commits).
    _writer = None

    def _tell(self, *, force: bool = False) -> None:
        w = self._writer
        if w is None or (not force and time.monotonic() - w[2][0] < 1.0):
            return
        conn, info, at = w
        at[0] = time.monotonic()
        name = f"wenda-writer {info['kind']} {info['done']} {info['total'] or 0} {int(info['started'])}"
        conn.execute("SELECT set_config('application_name', %s, false)", (name,))

    def tell_progress(self, done: int) -> None:
        """Record how far the lock holder is (at most once a second), for busy messages."""
        if self._writer is not None:
            self._writer[1]["done"] = done
            self._tell()

    def _holder(self, conn) -> dict | None:
        row = conn.execute("SELECT application_name FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name LIKE 'wenda-writer %%' LIMIT 1").fetchone()
        if not row:
            return None
        with contextlib.suppress(ValueError):
            _, kind, done, total, started = row[0].split(" ")
            return {"kind": kind, "done": int(done), "total": int(total) or None, "started": float(started)}
        return None

    def _open_session(self, conn, manifest: Manifest, rebuild: bool) -> PgWriteSession:
        _, register_vector, _, _ = _deps()
        notes = []
        if schema.has_schema(conn):
            schema.check_schema(conn)
            row = conn.execute("SELECT value FROM wenda_meta WHERE key = 'manifest'").fetchone()
            old = Manifest.from_json(row[0]) if row else None
            if rebuild or old is None:
                schema.drop(conn)
                schema.create(conn, manifest.dim)
            else:
                contract.check_compatible(old, model_id=manifest.embed_model, dim=manifest.dim,
                                          splitter=_splitter(manifest))
                if old.tokenizer != manifest.tokenizer:
                    raise IndexMismatchError(
                        f"Index words were cut by tokenizer {old.tokenizer}, this wenda uses {manifest.tokenizer}; "
                        "run 'wenda migrate' from an index dir, or 'wenda ingest --rebuild'.")
        else:
            schema.create(conn, manifest.dim)
        register_vector(conn)
        if conn.execute("SELECT count(*) FROM wenda_meta WHERE key = 'manifest'").fetchone()[0] == 0:
            conn.execute("INSERT INTO wenda_meta (key, value) VALUES ('manifest', %s)", (manifest.to_json(),))
        return PgWriteSession(self, conn, notes)

    def maintenance_due(self) -> list[str]:
        with self.pool().connection() as conn:
            st = self._state(conn)
            if not st or not st[2]:
                return []
            avgdl, ref = st[3] / st[2], st[4]
            return ["keyword"] if ref and abs(avgdl / ref - 1) > REWEIGHT_DRIFT else []

    def maintain(self, *, force: bool = False, wait: float = 30.0) -> MaintenanceReport:
        """Re-compute the BM25 weights and champion lists when the average
        length drifted (or ``force``); ``VACUUM (ANALYZE)`` the tables."""
        due = self.maintenance_due()
        done = []
        if force or due:
            with self.writer(manifest=self.manifest(), wait=wait, kind="maintain") as session:
                n = session.reweight()
                session.bump = True
                session.commit()
            done.append(f"keyword: re-weighted {n} passages and their champion lists")
        conn = self.connect(autocommit=True)
        try:
            for table in ("passages", "champions", "terms"):
                conn.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            conn.close()
        return MaintenanceReport(self.generation(), tuple(done))

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def _splitter(manifest: Manifest):
    from ..splitter import SplitterSettings

    return SplitterSettings(**manifest.splitter)


# ---- the write session ------------------------------------------------------------------------------
class PgWriteSession:
    """One write transaction; ``commit()`` publishes it, anything else rolls back."""

    def __init__(self, backend: PgBackend, conn, notes: list[str]) -> None:
        self.backend, self.conn, self.notes = backend, conn, notes
        self.prev = None if backend_generation(conn) == 0 else True
        st = conn.execute("SELECT generation, n_articles, n_passages, total_terms, ref_avgdl FROM wenda_state "
                          "FOR UPDATE").fetchone()
        self.gen0, self.n_articles, self.n_passages, self.total_terms, self.ref_avgdl = st
        self.first_load = not self.ref_avgdl
        self.added: list[str] = []
        self.replaced: list[str] = []
        self.deleted: list[str] = []
        self.passages_added = 0
        self.passages_removed = 0
        self.bump = False
        self.committed = False
        self.passages_recut = 0
        self.df_delta: Counter = Counter()

    def content_hash(self, article_id: str) -> str | None:
        row = self.conn.execute("SELECT content_hash FROM articles WHERE article_id = %s", (article_id,)).fetchone()
        return row[0] if row else None

    def cached_vectors(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        rows = self.conn.execute("SELECT content_hash, embedding FROM vector_cache WHERE content_hash = ANY(%s)",
                                 (list(keys),)).fetchall()
        return {bytes(k): np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, np.float32) for k, v in rows}

    def _remove(self, article_id: str) -> None:
        rows = self.conn.execute("SELECT term_ids, n_terms FROM passages WHERE article_id = %s",
                                 (article_id,)).fetchall()
        gone = Counter(t for ids, _ in rows for t in ids)
        if gone:
            ids = sorted(gone)  # one lock order for concurrent writers
            self.conn.execute("UPDATE terms SET df = df - v.c FROM unnest(%s::int[], %s::int[]) AS v(id, c) "
                              "WHERE term_id = v.id", (ids, [gone[i] for i in ids]))
        self.conn.execute("DELETE FROM articles WHERE article_id = %s", (article_id,))  # cascades
        self.n_passages -= len(rows)
        self.total_terms -= sum(n for _, n in rows)
        self.passages_removed += len(rows)

    def put(self, item: PreparedArticle) -> None:
        """Add an article, or replace the one with its id."""
        _, _, SparseVector, _ = _deps()
        a = item.article
        if self.content_hash(a.article_id) is not None:
            self._remove(a.article_id)
            self.replaced.append(a.article_id)
        else:
            self.added.append(a.article_id)
            self.n_articles += 1
        conn = self.conn
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO vector_cache (content_hash, embedding) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                            [(k, np.asarray(v, np.float32)) for k, v in zip(item.vector_keys, item.vectors)])
        vocab = sorted({t for terms in item.terms for t in terms})
        ids = self._term_ids(vocab)
        conn.execute("INSERT INTO articles (article_id, title, text, date, source, url, path, content_hash) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                     (a.article_id, a.title, a.text, a.date, a.source, a.url, a.path, item.content_hash))
        if item.paragraphs:
            with conn.cursor() as cur:
                cur.executemany('INSERT INTO paragraphs (article_id, paragraph, section, start, "end", is_heading) '
                                "VALUES (%s, %s, %s, %s, %s, %s)",
                                [(a.article_id, p.paragraph, p.section, p.start, p.end, p.is_heading)
                                 for p in item.paragraphs])
        self.n_passages += len(item.passages)
        self.total_terms += sum(len(t) for t in item.terms)
        avgdl = self.ref_avgdl or (self.total_terms / max(self.n_passages, 1))
        df = Counter()
        champions = []
        params, all_weights = [], []
        for p, terms, vec, key in zip(item.passages, item.terms, item.vectors, item.vector_keys):
            tf = Counter(ids[t] for t in terms)
            tids = sorted(tf)
            weights = {i: impact(tf[i], len(terms), avgdl) for i in tids}
            all_weights.append(weights)
            params.append((p.passage_id, a.article_id, p.section, p.paragraph, p.part, p.start, p.end, p.text,
                           " ".join(terms), len(terms), tids, [tf[i] for i in tids], SparseVector(weights, SPARSE_DIM),
                           key, np.asarray(vec, np.float32)))
            df.update(tids)
        with conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO passages (passage_id, article_id, section, paragraph, part, start, "end", text, terms, '
                "n_terms, term_ids, tfs, bm25, vector_key, embedding) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id", params, returning=True)
            rows = []
            while True:
                rows.append(cur.fetchone()[0])
                if not cur.nextset():
                    break
        for rid, weights in zip(rows, all_weights):
            champions += [(i, w, rid) for i, w in weights.items()]
        self.passages_added += len(item.passages)
        if champions:
            conn.execute("INSERT INTO champions (term_id, impact, passage) "
                         "SELECT * FROM unnest(%s::int[], %s::real[], %s::bigint[])",
                         ([c[0] for c in champions], [c[1] for c in champions], [c[2] for c in champions]))
            # Document frequencies and champion trims are applied once, at commit:
            # a bulk load then touches each term once instead of once an article.
            self.df_delta.update(df)
            if len(self.df_delta) > 200_000:
                self._flush_terms()

    def _flush_terms(self) -> None:
        if not self.df_delta:
            return
        touched = sorted(self.df_delta)  # one lock order for concurrent writers
        self.conn.execute("UPDATE terms SET df = df + v.c FROM unnest(%s::int[], %s::int[]) AS v(id, c) "
                          "WHERE term_id = v.id", (touched, [self.df_delta[i] for i in touched]))
        self._trim(touched)
        self.df_delta.clear()

    def _term_ids(self, vocab: list[str]) -> dict[str, int]:
        if not vocab:
            return {}
        self.conn.execute("INSERT INTO terms (term) SELECT unnest(%s::text[]) ON CONFLICT (term) DO NOTHING", (vocab,))
        return dict(self.conn.execute("SELECT term, term_id FROM terms WHERE term = ANY(%s)", (vocab,)).fetchall())

    def _trim(self, term_ids: list[int]) -> None:
        """Keep each touched term's M best postings."""
        self.conn.execute(
            "DELETE FROM champions c USING (SELECT x.term_id, x.passage FROM unnest(%s::int[]) AS t(term_id) "
            "CROSS JOIN LATERAL (SELECT term_id, passage FROM champions ch WHERE ch.term_id = t.term_id "
            "ORDER BY impact DESC, passage OFFSET %s) x) d WHERE c.term_id = d.term_id AND c.passage = d.passage",
            (term_ids, self.backend.options.champions))

    def delete(self, article_id: str) -> None:
        """Remove an article (its paragraphs, passages and champion rows cascade).

        Raises:
            NotFoundError: it is not in the index.
        """
        if self.content_hash(article_id) is None:
            raise NotFoundError(f"No article {article_id!r} in the index; 'wenda info' lists the articles.")
        self._remove(article_id)
        self.deleted.append(article_id)
        self.n_articles -= 1

    def reweight(self) -> int:
        """Re-compute every passage's BM25 weights at the current average
        length, and every champion list. O(N): run inline only while small."""
        _, _, SparseVector, _ = _deps()
        conn = self.conn
        avgdl = self.total_terms / max(self.n_passages, 1)
        conn.execute("DELETE FROM champions")
        n = 0
        with conn.cursor(name="reweight") as cur:
            cur.itersize = 5000
            cur.execute("SELECT id, term_ids, tfs, n_terms FROM passages")
            batch = []
            for rid, tids, tfs, dl in cur:
                batch.append((rid, {i: impact(f, dl, avgdl) for i, f in zip(tids, tfs)}))
                n += 1
                if len(batch) >= 5000:
                    self._write_weights(batch, SparseVector)
                    batch = []
            self._write_weights(batch, SparseVector)
        m = self.backend.options.champions
        conn.execute("DELETE FROM champions c USING (SELECT term_id, passage, row_number() OVER "
                     "(PARTITION BY term_id ORDER BY impact DESC, passage) AS r FROM champions) d "
                     "WHERE d.r > %s AND c.term_id = d.term_id AND c.passage = d.passage", (m,))
        self.ref_avgdl = avgdl
        return n

    def _write_weights(self, batch, SparseVector) -> None:
        if not batch:
            return
        with self.conn.cursor() as cur:
            cur.executemany("UPDATE passages SET bm25 = %s WHERE id = %s",
                            [(SparseVector(w, SPARSE_DIM), rid) for rid, w in batch])
        rows = [(i, w, rid) for rid, ws in batch for i, w in ws.items()]
        self.conn.execute("INSERT INTO champions (term_id, impact, passage) "
                          "SELECT * FROM unnest(%s::int[], %s::real[], %s::bigint[])",
                          ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))

    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.deleted or self.bump)

    def commit(self) -> WriteReceipt:
        """Publish the write (nothing when nothing changed)."""
        if not self.changed():
            self.conn.rollback()
            self.committed = True
            return WriteReceipt(generation=self.gen0, counts=Counts(self.n_articles, self.n_passages))
        self._flush_terms()
        avgdl = self.total_terms / max(self.n_passages, 1)
        drifted = self.n_passages and (not self.ref_avgdl or abs(avgdl / self.ref_avgdl - 1) > REWEIGHT_DRIFT)
        if drifted and (self.n_passages <= REWEIGHT_INLINE_MAX or self.first_load):
            self.reweight()
        elif not self.ref_avgdl:
            self.ref_avgdl = avgdl
        gen = self.gen0 + 1
        self.conn.execute("UPDATE wenda_state SET generation = %s, n_articles = %s, n_passages = %s, "
                          "total_terms = %s, ref_avgdl = %s, updated_at = now()",
                          (gen, self.n_articles, self.n_passages, self.total_terms, self.ref_avgdl))
        self.conn.commit()
        self.committed = True
        return WriteReceipt(generation=gen, added=tuple(self.added), replaced=tuple(self.replaced),
                            deleted=tuple(self.deleted), passages_added=self.passages_added,
                            passages_removed=self.passages_removed,
                            counts=Counts(self.n_articles, self.n_passages))

    def close(self) -> None:
        if not self.committed and not self.conn.closed:
            self.conn.rollback()


def backend_generation(conn) -> int:
    return int(conn.execute("SELECT generation FROM wenda_state").fetchone()[0])


# ---- the snapshot ------------------------------------------------------------------------------------
_SELECT_PASSAGES = ('SELECT p.id, p.passage_id, p.article_id, a.title, p.section, p.paragraph, p.part, p.start, '
                    'p."end", p.text FROM passages p JOIN articles a USING (article_id)')


def _passage(row) -> tuple[int, Passage]:
    return int(row[0]), Passage(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])


class PgSnapshot:
    """One ``REPEATABLE READ READ ONLY`` transaction; ``close()`` returns its connection."""

    dense_kind = "hnsw"

    def __init__(self, backend: PgBackend, conn, generation: int, counts: Counts, manifest: Manifest) -> None:
        self.backend, self.conn, self.generation, self.counts, self.manifest = backend, conn, generation, counts, manifest
        self.created_at = manifest.created_at
        self._lock = threading.Lock()  # one connection: one statement at a time

    def _q(self, sql: str, params=()):
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def dense_topk(self, vector: np.ndarray, k: int) -> list[Scored]:
        rows = self._q("SELECT id, -(embedding <#> %(v)s) FROM passages ORDER BY embedding <#> %(v)s LIMIT %(k)s",
                       {"v": np.asarray(vector, np.float32), "k": int(k)})
        # Iterative scans return rows in relaxed order: sort them.
        return [Scored(int(r), float(s)) for r, s in sorted(rows, key=lambda x: (-x[1], x[0]))]

    def keyword_topk(self, terms: Sequence[str], k: int) -> list[Scored]:
        """BM25 top ``k``: candidates from the champion lists, then the exact dot product."""
        _, _, SparseVector, _ = _deps()
        terms = contract.clean_terms(terms)
        if not terms or k <= 0 or not self.counts.passages:
            return []
        qtf = Counter(terms)
        found = self._q("SELECT term, term_id, df FROM terms WHERE term = ANY(%s) AND df > 0", (list(qtf),))
        if not found:
            return []
        n = self.counts.passages
        weights = {tid: qtf[t] * idf(n, df) for t, tid, df in found}
        rows = self._q(
            "WITH q AS (SELECT * FROM unnest(%(ids)s::int[], %(w)s::float8[]) AS q(term_id, w)), "
            "cand AS (SELECT c.passage FROM q CROSS JOIN LATERAL (SELECT passage, impact FROM champions ch "
            "WHERE ch.term_id = q.term_id ORDER BY impact DESC LIMIT %(m)s) c "
            "GROUP BY c.passage ORDER BY sum(q.w * c.impact) DESC, c.passage LIMIT %(r)s) "
            "SELECT p.id, -(p.bm25 <#> %(v)s) AS score FROM cand JOIN passages p ON p.id = cand.passage "
            "ORDER BY score DESC, p.id LIMIT %(k)s",
            {"ids": list(weights), "w": list(weights.values()), "m": self.backend.options.champions,
             "r": max(self.backend.options.candidates, k), "v": SparseVector(weights, SPARSE_DIM), "k": int(k)})
        return [Scored(int(r), float(s)) for r, s in rows if s > 0]

    def doc_freq(self, term: str) -> int:
        rows = self._q("SELECT df FROM terms WHERE term = %s", (term,))
        return int(rows[0][0]) if rows else 0

    def passages(self, rows: Sequence[int]) -> dict[int, Passage]:
        if not rows:
            return {}
        return dict(_passage(r) for r in self._q(f"{_SELECT_PASSAGES} WHERE p.id = ANY(%s)", ([int(r) for r in rows],)))

    def passage(self, passage_id: str) -> Passage | None:
        rows = self._q(f"{_SELECT_PASSAGES} WHERE p.passage_id = %s", (passage_id,))
        return _passage(rows[0])[1] if rows else None

    def article(self, article_id: str) -> tuple[Article, list[Paragraph]] | None:
        rows = self._q("SELECT article_id, title, text, date, source, url, path FROM articles WHERE article_id = %s",
                       (article_id,))
        if not rows:
            return None
        a = Article(*rows[0])
        paras = self._q('SELECT paragraph, section, start, "end", is_heading FROM paragraphs WHERE article_id = %s '
                        "ORDER BY paragraph", (article_id,))
        return a, [Paragraph(a.article_id, p, sec, s, e, a.text[s:e], bool(h)) for p, sec, s, e, h in paras]

    def article_ids(self, *, limit: int = 1000, offset: int = 0) -> list[str]:
        return [r[0] for r in self._q("SELECT article_id FROM articles ORDER BY article_id LIMIT %s OFFSET %s",
                                      (limit, offset))]

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._q("SELECT id, embedding FROM passages ORDER BY id")
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, self.manifest.dim), np.float32)
        return (np.asarray([r for r, _ in rows], np.int64),
                np.stack([np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, np.float32) for _, v in rows]))

    def stored_terms(self) -> dict[int, list[str]]:
        return dict(self.iter_terms())

    def iter_terms(self) -> Iterator[tuple[int, list[str]]]:
        """(row id, BM25 terms) of every passage, streamed through a server-side cursor."""
        with self._lock, self.conn.cursor(name="terms") as cur:
            cur.itersize = 10_000
            cur.execute("SELECT id, terms FROM passages ORDER BY id")
            for r, t in cur:
                yield int(r), (t.split(" ") if t else [])

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            _release(self.backend.pool(), conn)

    def __del__(self) -> None:
        # A snapshot dropped without close() (a caller that forgot) still
        # gives its connection back rather than starving the pool.
        with contextlib.suppress(Exception):
            self.close()


def _release(pool, conn) -> None:
    """End a snapshot's transaction and give its connection back."""
    with contextlib.suppress(Exception):
        conn.execute("ROLLBACK")
    with contextlib.suppress(Exception):
        conn.autocommit = False
    pool.putconn(conn)
