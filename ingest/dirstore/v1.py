"""Format 1 (``CURRENT`` + ``gen-*/`` full copies), read once to convert it.

The next write to a format-1 dir converts it under the writer lock: it
copies the live generation's articles, paragraphs and passages into the
format-2 store with their vectors read back from FAISS (nothing is
re-embedded), builds the keyword index from their terms (re-cut when the
tokenizer changed), publishes generation 1, and then removes ``CURRENT`` and
the ``gen-*`` folders. A crash before the publish leaves format 1 whole; a
crash after it is finished by the next write.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np

from .. import contract
from ..contract import Manifest
from ..embedder import EmbeddingCache
from ..models import Article, Paragraph, Passage
from ..splitter import SplitterSettings
from . import dense as dn
from . import keyword as kw
from . import layout
from . import store as st


def live_generation(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / layout.V1_CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    gen = index_dir / name
    return gen if (gen / "manifest.json").is_file() else None


def remove(index_dir: Path) -> None:
    """Remove format 1's pointer and generation folders (its embedding cache stays)."""
    (index_dir / layout.V1_CURRENT).unlink(missing_ok=True)
    for p in index_dir.glob(f"{layout.V1_GEN_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)


def convert(backend, manifest: Manifest) -> str:
    """Convert a format-1 index dir to format 2 (under the writer lock); the line to show.

    Raises:
        IndexMismatchError: it was built with another model, dimension or splitter
            (convert with the old settings, or ``--rebuild``).
    """
    import faiss

    path: Path = backend.path
    gen_dir = live_generation(path)
    if gen_dir is None:
        remove(path)
        return f"Removed an unfinished index of wenda's older format at {path}."
    old = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    contract.check_compatible(old, model_id=manifest.embed_model, dim=manifest.dim,
                              splitter=SplitterSettings(**manifest.splitter))
    conn = backend._write_conn()
    try:
        if st.latest_commit(conn) is None:
            n = _copy(backend, conn, gen_dir, old, manifest, faiss)
        else:  # converted before, but a crash came before the old files were removed
            n = st.latest_commit(conn).passages
    finally:
        conn.close()
    layout.write_atomic(path / layout.FORMAT, layout.FORMAT_TEXT.encode())
    backend.write_manifest_copy()
    remove(path)
    return f"Converted the index at {path} to format 2 ({n} passages, nothing re-embedded)."


def _copy(backend, conn: sqlite3.Connection, gen_dir: Path, old: dict, manifest: Manifest, faiss) -> int:
    index = faiss.read_index(str(gen_dir / "dense.faiss"))
    ids, vecs = dn.all_vectors(index)
    vec_of = dict(zip(ids.tolist(), vecs))
    recut = old.get("tokenizer") != manifest.tokenizer
    src = sqlite3.connect(f"file:{gen_dir / 'store.sqlite'}?mode=ro", uri=True)
    kw_name = f"{layout.KEYWORD_PREFIX}000001-v1"
    shutil.rmtree(backend.path / kw_name, ignore_errors=True)
    kindex = kw.open_index(backend.path / kw_name, create=True)
    writer = kw.KeywordWriter(kindex)
    created = Manifest.from_json({**old, "format_version": contract.FORMAT_VERSION, "tokenizer": manifest.tokenizer,
                                  "bm25": manifest.bm25, "index_text": old.get("index_text", manifest.index_text)})
    n_articles = n_passages = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        for row in src.execute("SELECT article_id, title, text, date, source, url, path, content_hash, ingested_at "
                               "FROM articles ORDER BY article_id").fetchall():
            article = Article(*row[:7])
            paras = [Paragraph(article.article_id, p, sec, s, e, article.text[s:e], bool(h)) for p, sec, s, e, h in
                     src.execute('SELECT paragraph, section, start, "end", is_heading FROM paragraphs '
                                 "WHERE article_id = ? ORDER BY paragraph", (article.article_id,))]
            key = st.insert_article(conn, article, row[7], row[8], 1, paras)
            rows = src.execute('SELECT id, passage_id, section, paragraph, part, start, "end", text, tokens '
                               "FROM passages WHERE article_id = ? ORDER BY id", (article.article_id,)).fetchall()
            passages = [Passage(pid, article.article_id, article.title, sec, para, part, s, e, text)
                        for _, pid, sec, para, part, s, e, text, _ in rows]
            terms = [contract.terms_for(p) if recut else contract.clean_terms(toks.split(" ") if toks else [])
                     for p, (*_, toks) in zip(passages, rows)]
            keys = [EmbeddingCache.key(manifest.embed_model, "passage", contract.index_text(p)) for p in passages]
            vids = st.put_vectors(conn, keys, np.stack([vec_of[r[0]] for r in rows]) if rows else
                                  np.zeros((0, manifest.dim), np.float32))
            new_rows = st.insert_passages(conn, key, passages, terms, vids, 1)
            writer.add(new_rows, terms, 1)
            n_articles += 1
            n_passages += len(new_rows)
        opstamp = writer.commit()
        max_rowid = int(conn.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0])
        st.insert_commit(conn, st.Commit(
            gen=1, created_at=old.get("created_at", ""), max_rowid=max_rowid, keyword_dir=kw_name,
            keyword_opstamp=opstamp, dense_kind="flat", dense_base=None, dense_base_gen=1, dense_base_max_rowid=0,
            dense_nlist=None, dense_nprobe=None, articles=n_articles, passages=n_passages,
            manifest=created.to_json()))
        st.set_meta(conn, "keyword_deletes_applied", 1)
        st.set_meta(conn, "keyword_deleted", 0)
        st.set_meta(conn, "keyword_docs", n_passages)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        writer.rollback()
        shutil.rmtree(backend.path / kw_name, ignore_errors=True)
        raise
    finally:
        src.close()
    return n_passages
