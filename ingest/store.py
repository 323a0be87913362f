"""The passage and article store behind one narrow interface.

SQLite, so that answering a query reads only the rows of its hits, even with
millions of passages. A PostgreSQL backend implements the same methods.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from .models import Article, Paragraph, Passage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL,
    date TEXT, source TEXT, url TEXT, path TEXT,
    content_hash TEXT NOT NULL, ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS paragraphs (
    article_id TEXT NOT NULL, paragraph INTEGER NOT NULL, section TEXT,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, is_heading INTEGER NOT NULL,
    PRIMARY KEY (article_id, paragraph)
) WITHOUT ROWID;
-- AUTOINCREMENT: row ids are never reused, so a FAISS id always means one passage.
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, passage_id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL, section TEXT, paragraph INTEGER NOT NULL, part INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL, tokens TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_by_article ON passages (article_id);
"""

_PASSAGE_COLS = 'p.id, p.passage_id, p.article_id, a.title, p.section, p.paragraph, p.part, p.start, p."end", p.text'
# Passages with their article's title, as ``_passage`` reads them.
_SELECT_PASSAGES = f"SELECT {_PASSAGE_COLS} FROM passages p JOIN articles a USING (article_id)"


def _passage(row) -> tuple[int, Passage]:
    return row[0], Passage(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9])


class PassageStore(Protocol):
    """What query time needs from storage: rows by id, never a full scan.
    ``SqliteStore`` implements it; a PostgreSQL backend implements the same."""

    def passages_by_rowid(self, rowids: Sequence[int]) -> dict[int, Passage]: ...

    def passage(self, passage_id: str) -> Passage | None: ...

    def article(self, article_id: str) -> Article | None: ...

    def paragraphs(self, article_id: str) -> list[Paragraph]: ...

    def article_ids(self, *, limit: int = 1000, offset: int = 0) -> list[str]: ...

    def count_articles(self) -> int: ...

    def count_passages(self) -> int: ...

    def close(self) -> None: ...


class SqliteStore:
    """Articles, paragraphs and passages in one SQLite file.

    Args:
        path: the database file.
        readonly: open an immutable generation for queries (no locks taken).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        if readonly:
            # One connection for all threads, opened now: once open, the
            # generation stays readable even after a writer removes its files,
            # so a snapshot never fails half-way. Reads are short; SQLite
            # serialises them on this connection.
            self._shared = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True,
                                           check_same_thread=False)
        else:
            conn = self._conn()
            conn.executescript(_SCHEMA)  # executescript commits first
            conn.execute("BEGIN")

    def _conn(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=DELETE")
            conn.execute("BEGIN")
            self._local.conn = conn
        return conn

    # ---- reads -------------------------------------------------------------
    def passages_by_rowid(self, rowids: Sequence[int]) -> dict[int, Passage]:
        """Passages for FAISS/BM25 row ids; unknown ids are left out."""
        out: dict[int, Passage] = {}
        ids = [int(i) for i in rowids]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"{_SELECT_PASSAGES} WHERE p.id IN ({marks})"
            for row in self._conn().execute(sql, chunk):
                rowid, passage = _passage(row)
                out[rowid] = passage
        return out

    def passage(self, passage_id: str) -> Passage | None:
        row = self._conn().execute(
            f"{_SELECT_PASSAGES} WHERE p.passage_id = ?",
            (passage_id,),
        ).fetchone()
        return _passage(row)[1] if row else None

    def rowid_of(self, passage_id: str) -> int | None:
        row = self._conn().execute("SELECT id FROM passages WHERE passage_id = ?", (passage_id,)).fetchone()
        return row[0] if row else None

    def article(self, article_id: str) -> Article | None:
        row = self._conn().execute(
            "SELECT article_id, title, text, date, source, url, path FROM articles WHERE article_id = ?",
            (article_id,),
        ).fetchone()
        return Article(*row) if row else None

    def paragraphs(self, article_id: str) -> list[Paragraph]:
        article = self.article(article_id)
        if article is None:
            return []
        rows = self._conn().execute(
            'SELECT paragraph, section, start, "end", is_heading FROM paragraphs WHERE article_id = ? ORDER BY paragraph',
            (article_id,),
        )
        return [Paragraph(article_id, p, sec, s, e, article.text[s:e], bool(h)) for p, sec, s, e, h in rows]

    def content_hash(self, article_id: str) -> str | None:
        row = self._conn().execute("SELECT content_hash FROM articles WHERE article_id = ?", (article_id,)).fetchone()
        return row[0] if row else None

    def article_ids(self, *, limit: int = 1000, offset: int = 0) -> list[str]:
        rows = self._conn().execute("SELECT article_id FROM articles ORDER BY article_id LIMIT ? OFFSET ?",
                                    (limit, offset))
        return [r[0] for r in rows]

    def count_articles(self) -> int:
        return self._conn().execute("SELECT count(*) FROM articles").fetchone()[0]

    def count_passages(self) -> int:
        return self._conn().execute("SELECT count(*) FROM passages").fetchone()[0]

    def iter_tokens(self, batch: int = 10_000) -> Iterator[tuple[int, list[str]]]:
        """(row id, BM25 terms) of every passage, in row-id order."""
        last = -1
        while True:
            rows = self._conn().execute("SELECT id, tokens FROM passages WHERE id > ? ORDER BY id LIMIT ?",
                                        (last, batch)).fetchall()
            if not rows:
                return
            for rowid, tokens in rows:
                yield rowid, tokens.split(" ") if tokens else []
            last = rows[-1][0]

    def rowids_of_article(self, article_id: str) -> list[int]:
        return [r[0] for r in self._conn().execute("SELECT id FROM passages WHERE article_id = ?", (article_id,))]

    # ---- writes (only on a generation being built) -------------------------
    def delete_article(self, article_id: str) -> list[int]:
        """Remove an article; returns the row ids of its passages."""
        rowids = self.rowids_of_article(article_id)
        conn = self._conn()
        for table in ("passages", "paragraphs", "articles"):
            conn.execute(f"DELETE FROM {table} WHERE article_id = ?", (article_id,))
        return rowids

    def put_article(self, article: Article, content_hash: str, paragraphs: Sequence[Paragraph],
                    passages: Sequence[Passage], tokens: Sequence[list[str]]) -> list[int]:
        """Insert an article (replacing any with its id); returns new passage row ids."""
        self.delete_article(article.article_id)
        conn = self._conn()
        conn.execute(
            "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?)",
            (article.article_id, article.title, article.text, article.date, article.source, article.url,
             article.path, content_hash, datetime.now(timezone.utc).isoformat(timespec="seconds")),
        )
        conn.executemany(
            "INSERT INTO paragraphs VALUES (?,?,?,?,?,?)",
            [(p.article_id, p.paragraph, p.section, p.start, p.end, int(p.is_heading)) for p in paragraphs],
        )
        rowids = []
        for p, toks in zip(passages, tokens):
            cur = conn.execute(
                'INSERT INTO passages (passage_id, article_id, section, paragraph, part, start, "end", text, tokens) '
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (p.passage_id, p.article_id, p.section, p.paragraph, p.part, p.start, p.end, p.text, " ".join(toks)),
            )
            rowids.append(cur.lastrowid)
        return rowids

    def retokenize(self, tokenize: Callable[[Passage], list[str]], batch: int = 10_000) -> int:
        """Re-make every passage's BM25 terms with ``tokenize``; returns how many."""
        conn = self._conn()
        last, done = -1, 0
        while True:
            rows = conn.execute(f"{_SELECT_PASSAGES} WHERE p.id > ? ORDER BY p.id LIMIT ?", (last, batch)).fetchall()
            if not rows:
                return done
            conn.executemany("UPDATE passages SET tokens = ? WHERE id = ?",
                             [(" ".join(tokenize(p)), rowid) for rowid, p in map(_passage, rows)])
            done += len(rows)
            last = rows[-1][0]

    def commit(self) -> None:
        conn = self._conn()
        if conn.in_transaction:
            conn.execute("COMMIT")
        conn.execute("BEGIN")

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None
            return
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if not self.readonly and conn.in_transaction:
                conn.execute("COMMIT")
            conn.close()
            self._local.conn = None
