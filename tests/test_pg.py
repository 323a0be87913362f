"""PostgreSQL through the real CLI and the real app, on the session's server
(tests/conftest.py ``pg_server``): the same answers and citations as the
index dir, migrate without re-embedding, schema_version, busy writes."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from conftest import MINI, SEEDS, fresh_index_dir
from ingest.errors import IndexMismatchError
from ingest.pgstore.backend import PgBackend
from service.app import create_app
from service.cli import cli
from service.settings import load_settings

HUBEI = "湖北为基层配备了多少名大学生乡村医生？"


def _cli(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
def test_cli_on_postgresql_answers_as_the_index_dir(pg_url, tmp_path, warm_cache):
    idx = fresh_index_dir(tmp_path / "idx", warm_cache)
    assert _cli("--index-dir", str(idx), "ingest", str(SEEDS)).exit_code == 0
    r = _cli("--store", pg_url, "ingest", str(SEEDS))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("added 2, updated 0, unchanged 0, skipped 0;")
    assert r.stdout.rstrip().endswith(f"Index: 2 articles, 42 passages at {pg_url}")
    from_dir = json.loads(_cli("--index-dir", str(idx), "ask", HUBEI, "--json").stdout)
    from_pg = json.loads(_cli("ask", HUBEI, "--json", "--store", pg_url).stdout)
    assert from_pg["answer"] == from_dir["answer"] == "大学生乡村医生4777人"
    assert [(c["passage_id"], c["start"], c["end"], c["quote"]) for c in from_pg["citations"]] == [
        (c["passage_id"], c["start"], c["end"], c["quote"]) for c in from_dir["citations"]]
    info = _cli("--store", pg_url, "info", "--json")
    assert (json.loads(info.stdout)["articles"], json.loads(info.stdout)["faiss_index"]) == (2, "hnsw")


@pytest.mark.slow
def test_migrate_copies_an_index_dir_without_embedding(pg_url, tmp_path, e5, warm_cache):
    idx = fresh_index_dir(tmp_path / "idx", warm_cache)
    assert _cli("--index-dir", str(idx), "ingest", str(MINI)).exit_code == 0
    r = _cli("--index-dir", str(idx), "migrate", "--to", pg_url)
    assert (r.exit_code, r.stdout) == (0, f"copied 10 articles, 32 passages from {idx} to {pg_url}; "
                                          "nothing re-embedded\n")
    again = _cli("--index-dir", str(idx), "migrate", "--to", pg_url)
    assert (again.exit_code, again.stderr) == (1, f"Error: The database at {pg_url} already holds an index "
                                                  "(10 articles); pass --replace to overwrite it.\n")
    # Same ranked ids on both (the model never ran for the copy: its vectors came along).
    for q in ("荆江长江大桥主跨多少米？", "临港新区人民医院设置床位多少张？"):
        hits = [[h["passage_id"] for h in json.loads(_cli(*where, "search", q, "--json", "-k", "5").stdout)]
                for where in (("--index-dir", str(idx)), ("--store", pg_url))]
        assert hits[0] == hits[1]
    # A later ingest into PostgreSQL finds every article unchanged and embeds nothing.
    r = _cli("--store", pg_url, "ingest", str(MINI))
    assert r.stdout.startswith("added 0, updated 0, unchanged 10, skipped 0; embedded 0 passages")


def test_a_newer_schema_is_refused(pg_url, e5):
    backend = PgBackend(pg_url)
    from ingest.build import update_index
    from ingest.readers import article_from_text

    update_index(backend, e5, upserts=[article_from_text("x", "标题\n\n正文。")])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO wenda_schema (version) VALUES (3)")
    with pytest.raises(IndexMismatchError) as exc:
        backend.snapshot()
    assert str(exc.value) == ("The database schema is version 3; this wenda knows up to 1. "
                              "Upgrade wenda (pip install -U wenda).")
    backend.close()


@pytest.mark.slow
def test_api_on_postgresql_and_a_busy_write(pg_url, warm_cache, tmp_path):
    settings = load_settings(store=pg_url, corpus_dir=SEEDS, index_dir=fresh_index_dir(tmp_path / "i", warm_cache))
    with TestClient(create_app(settings)) as client:  # builds the index from the corpus at start-up
        r = client.post("/v1/ask", json={"question": HUBEI})
        assert (r.status_code, r.json()["answer"]) == (200, "大学生乡村医生4777人")
        assert client.get("/readyz").json()["index"]["passages"] == 42
        body = {"id": "pg-new", "title": "测试", "text": "测试\n青松镇今年新种植银杏树8848棵。"}
        with psycopg.connect(pg_url, autocommit=True) as other:  # another writer holds the lock
            other.execute("SELECT pg_advisory_lock(hashtextextended('wenda:write', 0))")
            busy = client.post("/v1/articles", json=body)
            other.execute("SELECT pg_advisory_unlock(hashtextextended('wenda:write', 0))")
        assert (busy.status_code, busy.json(), busy.headers["retry-after"]) == (
            503, {"detail": f"Another wenda process is writing to {pg_url}; try again in 5 s."}, "5")
        assert client.post("/v1/articles", json=body).json()["added"] == ["pg-new"]
        r = client.post("/v1/ask", json={"question": "青松镇今年新种植了多少棵银杏树？"})
        # (This database holds other articles than the API tests' index dir, so the
        # candidate scores differ and here the short span clears 0.5.)
        assert r.json()["answer"] == "银杏树8848棵"
        assert client.delete("/v1/articles/pg-new").status_code == 200
        assert client.get("/v1/articles/pg-new").status_code == 404


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_serve_processes_share_one_database(pg_url, tmp_path):
    """Two real 'wenda serve' processes on one PostgreSQL: a write through one
    is read through the other as soon as it returns, and the other way round."""
    import os
    import subprocess
    import sys
    import time

    import contextlib

    import httpx

    env = {**os.environ, "WENDA_STORE": pg_url, "WENDA_EMBED_MODEL": "hash-64", "WENDA_CORPUS_DIR": str(SEEDS),
           "WENDA_INDEX_DIR": str(tmp_path / "unused"), "WENDA_RATE_LIMIT_WRITES": "0"}
    procs = []

    def start() -> str:
        port = _free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return url
            time.sleep(0.3)
        raise AssertionError(f"wenda serve on {url} did not become ready")

    try:
        a = start()  # builds the index from the corpus into the database
        b = start()
        body = {"id": "shared-1", "title": "共享测试", "text": "共享测试\n两个进程共用一个数据库，青松镇种植银杏树8848棵。"}
        assert httpx.get(f"{b}/v1/articles/shared-1").status_code == 404
        assert httpx.post(f"{a}/v1/articles", json=body, timeout=30).json()["added"] == ["shared-1"]
        got = httpx.get(f"{b}/v1/articles/shared-1")
        assert (got.status_code, got.json()["title"]) == (200, "共享测试")
        hits = httpx.post(f"{b}/v1/search", json={"query": "青松镇银杏树", "mode": "bm25", "k": 3}).json()
        assert hits["results"][0]["passage_id"] == "shared-1:1"
        assert httpx.delete(f"{b}/v1/articles/shared-1", timeout=30).status_code == 200
        assert httpx.get(f"{a}/v1/articles/shared-1").status_code == 404
        assert httpx.get(f"{a}/readyz").json()["index"]["articles"] == 2
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


@pytest.mark.slow
def test_eval_on_postgresql_ranks_as_on_the_index_dir(pg_url, tmp_path, monkeypatch, warm_cache):
    """'wenda --store URL eval --dataset …' copies the set's index into the
    database and reads from there: the same recall as from the index dir."""
    monkeypatch.setenv("WENDA_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    figures = {}
    for where in ((), ("--store", pg_url)):
        out = tmp_path / f"out{len(where)}"
        r = _cli(*where, "eval", "--dataset", "cmrc2018-trial", "--limit", "12", "--modes", "hybrid,bm25",
                 "--no-baseline", "--out", str(out), "--no-progress")
        assert r.exit_code == 0, r.output
        data = json.loads((out / "cmrc2018-trial-limit12.json").read_text())
        figures[bool(where)] = {m: (data["modes"][m]["recall@1"], data["modes"][m]["recall@5"]) for m in data["modes"]}
        assert data["index"]["faiss_index"] == ("hnsw" if where else "flat")
    assert figures[True] == figures[False]
