"""The PostgreSQL schema (``schema_version`` 1) and its checks.

Articles, paragraphs and passages as rows; vectors in pgvector (``vector(dim)``,
HNSW with inner-product ops); BM25 over our own jieba terms: per passage its
distinct term ids and frequencies and a ``sparsevec`` of BM25 term weights
(the tf part at ``ref_avgdl``), per term its document frequency and its
*champion list* (its ``CHAMPIONS`` best postings by weight), from which a
query takes candidates before the exact sparse dot product
(scratch/scale/DESIGN.md §4: 0.84 ms p50 and top-10 overlap 0.997 with
exact SQL BM25 at 20k passages; ``ts_rank_cd`` ranked unlike BM25, overlap 0.21).
"""

from __future__ import annotations

from ..errors import IndexMismatchError

SCHEMA_VERSION = 1
#: pgvector 0.8 has iterative index scans; before 0.8.3 HNSW had insert/vacuum races (pgvector#993, #988).
MIN_PGVECTOR = (0, 8, 3)

TABLES = ("wenda_schema", "wenda_meta", "wenda_state", "champions", "terms", "passages", "paragraphs", "articles",
          "vector_cache")


def ddl(dim: int) -> str:
    return f"""
CREATE TABLE wenda_schema (version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE wenda_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE wenda_state (
    one bool PRIMARY KEY DEFAULT true CHECK (one),
    generation bigint NOT NULL, n_articles bigint NOT NULL, n_passages bigint NOT NULL,
    total_terms bigint NOT NULL,            -- for the average length
    ref_avgdl double precision NOT NULL,    -- the average length the stored weights were computed with
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO wenda_state (generation, n_articles, n_passages, total_terms, ref_avgdl) VALUES (0, 0, 0, 0, 0);
CREATE TABLE articles (
    article_id text PRIMARY KEY, title text NOT NULL, text text NOT NULL, date text, source text, url text,
    path text, content_hash text NOT NULL, ingested_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE paragraphs (
    article_id text NOT NULL REFERENCES articles ON DELETE CASCADE, paragraph int NOT NULL, section text,
    start int NOT NULL, "end" int NOT NULL, is_heading bool NOT NULL, PRIMARY KEY (article_id, paragraph));
CREATE TABLE passages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    passage_id text NOT NULL UNIQUE,
    article_id text NOT NULL REFERENCES articles ON DELETE CASCADE,
    section text, paragraph int NOT NULL, part int NOT NULL, start int NOT NULL, "end" int NOT NULL,
    text text NOT NULL,
    terms text NOT NULL,                    -- space-joined BM25 terms, as cut (migration and re-weighting read them)
    n_terms int NOT NULL,
    term_ids int[] NOT NULL, tfs int[] NOT NULL,
    bm25 sparsevec NOT NULL,
    vector_key bytea NOT NULL,
    embedding vector({dim}) NOT NULL);
CREATE INDEX passages_by_article ON passages (article_id);
CREATE INDEX passages_hnsw ON passages USING hnsw (embedding vector_ip_ops) WITH (m = 16, ef_construction = 64);
CREATE TABLE terms (term_id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, term text NOT NULL UNIQUE,
                    df int NOT NULL DEFAULT 0);
CREATE TABLE champions (term_id int NOT NULL, impact real NOT NULL,
                        passage bigint NOT NULL REFERENCES passages ON DELETE CASCADE);
CREATE INDEX champions_by_term ON champions (term_id, impact DESC) INCLUDE (passage);
CREATE INDEX champions_by_passage ON champions (passage);
CREATE TABLE vector_cache (content_hash bytea PRIMARY KEY, embedding vector({dim}) NOT NULL);
INSERT INTO wenda_schema (version) VALUES ({SCHEMA_VERSION});
"""


def has_schema(conn) -> bool:
    return conn.execute("SELECT to_regclass('wenda_schema') IS NOT NULL").fetchone()[0]


def check_schema(conn) -> None:
    """Refuse a database whose schema this wenda does not know.

    Raises:
        IndexMismatchError: a newer schema version, or a pgvector that is too old.
    """
    version = conn.execute("SELECT max(version) FROM wenda_schema").fetchone()[0]
    if version is not None and version > SCHEMA_VERSION:
        raise IndexMismatchError(f"The database schema is version {version}; this wenda knows up to "
                                 f"{SCHEMA_VERSION}. Upgrade wenda (pip install -U wenda).")


def check_pgvector(conn) -> None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    have = tuple(int(x) for x in row[0].split(".")[:3]) if row else None
    if have is None or have < MIN_PGVECTOR:
        want = ".".join(map(str, MIN_PGVECTOR))
        raise IndexMismatchError(f"wenda needs the pgvector extension {want} or newer in this database "
                                 f"(found {row[0] if row else 'none'}); install it and run CREATE EXTENSION vector.")


def create(conn, dim: int) -> None:
    """Create the extension (when allowed) and the schema, in the caller's transaction."""
    if conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 0:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    check_pgvector(conn)
    conn.execute(ddl(int(dim)))


def drop(conn) -> None:
    conn.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES) + " CASCADE")
