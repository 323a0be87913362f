"""Generative answers through an OpenAI-compatible LLM, every sentence checked
against the passage it cites; multi-turn chat; streaming.

The LLM is a real HTTP server on 127.0.0.1 (tests/fake_llm.py) that speaks the
OpenAI chat API, streaming and not, with replies scripted per test. Nothing
is downloaded and no real model runs."""

from __future__ import annotations

import pytest

from service.settings import SettingsError, load_settings


# ---- settings ----------------------------------------------------------------------------------
def test_without_llm_settings_nothing_is_configured():
    s = load_settings()
    assert (s.llm_base_url, s.llm_model, s.llm_api_key) == (None, None, None)


@pytest.mark.parametrize(("env", "message"), [
    ({"WENDA_LLM_BASE_URL": "http://127.0.0.1:9/v1"},
     "WENDA_LLM_MODEL: must be set when WENDA_LLM_BASE_URL is set (http://127.0.0.1:9/v1) (got None)"),
    ({"WENDA_LLM_BASE_URL": "127.0.0.1:9/v1", "WENDA_LLM_MODEL": "m"},
     "WENDA_LLM_BASE_URL: must be an http:// or https:// URL, e.g. http://127.0.0.1:11434/v1 (got '127.0.0.1:9/v1')"),
    ({"WENDA_LLM_TIMEOUT": "0"}, "WENDA_LLM_TIMEOUT: Input should be greater than 0 (got '0')"),
    # The key is never echoed, even when it is refused.
    ({"WENDA_LLM_BASE_URL": "http://127.0.0.1:9/v1", "WENDA_LLM_MODEL": "m", "WENDA_LLM_MAX_TOKENS": "1",
      "WENDA_LLM_API_KEY": "sk-secret-value"}, "WENDA_LLM_MAX_TOKENS: Input should be greater than or equal to 16 (got '1')"),
])
def test_bad_llm_settings_name_the_variable(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert str(exc.value) == message


def test_the_llm_key_is_never_shown():
    s = load_settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="m", llm_api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(s) and "sk-secret-value" not in str(s.model_dump())


# ---- the scripted LLM and wenda in front of it ----------------------------------------------------
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

from conftest import SEEDS  # noqa: E402
from fake_llm import FakeLLM, Reply, passage_number, prompt_text  # noqa: E402
from retriever.answer import NOT_FOUND_MESSAGE  # noqa: E402
from test_live_server import live_server  # noqa: E402

FUJIAN = "福建12345热线的群众满意率是多少？"
FUJIAN_P = "004_ef22c67862e0d2cc:15"
FUJIAN_QUOTE = "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%。"
LLM_KEY = "sk-test-llm-key-0123"
TIMEOUT = 1.0
FAILED = "The LLM failed ({}); this is the extractive answer."


def llm_settings(index_dir: Path, url: str, **overrides):
    return load_settings(index_dir=index_dir, corpus_dir=SEEDS, llm_base_url=url, llm_model="fake-model",
                         llm_api_key=LLM_KEY, llm_timeout=TIMEOUT, llm_max_retries=0, **overrides)


@pytest.fixture(scope="module", autouse=True)
def _uvicorn_logging_kept():
    """Give back uvicorn's loggers as they were: its config raises
    ``uvicorn.error`` to WARNING, which would hide the INFO lines that tests
    run after this module read through caplog (tests/test_api.py)."""
    import logging

    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate, list(logging.getLogger(n).handlers))
             for n in names}
    yield
    for name, (level, propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


@pytest.fixture(scope="module")
def llm():
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seed_dir(seed_index, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("llm") / "index"
    shutil.copytree(seed_index, dst)
    return dst


@pytest.fixture(scope="module")
def wenda(seed_dir, llm):
    """wenda under uvicorn on 127.0.0.1, pointed at the scripted LLM."""
    with live_server(llm_settings(seed_dir, llm.url)) as url:
        yield url


@pytest.fixture(scope="module")
def plain(seed_dir):
    """wenda without an LLM."""
    with live_server(load_settings(index_dir=seed_dir, corpus_dir=SEEDS)) as url:
        yield url


@pytest.fixture
def script(llm):
    """Set what the LLM answers; reset afterwards."""
    def set_script(fn):
        llm.script = fn
        llm.requests.clear()
    yield set_script
    llm.script = lambda body: Reply("NOT_IN_ARTICLES")


def post(url: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30)


def ask_stream(url: str, body: dict) -> tuple[list[str], dict]:
    """/v1/ask with stream: the delta texts and the final answer event."""
    deltas, answer, names = [], None, []
    with httpx.stream("POST", f"{url}/v1/ask", json={**body, "stream": True}, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                names.append(event)
            elif line.startswith("data: ") and event == "delta":
                deltas.append(json.loads(line[6:])["text"])
            elif line.startswith("data: ") and event == "answer":
                answer = json.loads(line[6:])
    assert names == ["delta"] * len(deltas) + ["answer", "done"]
    return deltas, answer


def cites(needle: str):
    """A script helper: the number of the passage holding ``needle``."""
    return lambda body: passage_number(body, needle)


def extractive(url: str, question: str = FUJIAN) -> dict:
    data = post(url, "/v1/ask", {"question": question, "answerer": "extractive"}).json()
    data.pop("took_ms")
    return data


def without_markers(citations: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "marker"} for c in citations]


GOOD = "福建12345热线的群众满意率为99.89%[{n}]。全省12345热线共受理群众诉求537.2万件[{n}]。"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_good_cited_answer_is_shown_with_checked_citations(wenda, llm, script, stream):
    script(lambda body: Reply(GOOD.format(n=passage_number(body, "群众满意率99.89%"))))
    if stream:
        deltas, data = ask_stream(wenda, {"question": FUJIAN})
    else:
        data = post(wenda, "/v1/ask", {"question": FUJIAN}).json()
    [request] = llm.requests
    n = passage_number(request["body"], "群众满意率99.89%")
    reply = GOOD.format(n=n)
    assert (data["answerer"], data["answerable"], data["fallback"], data["answer"]) == ("llm", True, None, reply)
    [c] = data["citations"]
    assert (c["marker"], c["passage_id"], c["paragraph"], c["quote"]) == (n, FUJIAN_P, 15, FUJIAN_QUOTE)
    article = httpx.get(f"{wenda}/v1/articles/{c['article_id']}").json()
    assert article["text"][c["start"]:c["end"]] == FUJIAN_QUOTE
    assert data["sentences"] == [
        {"text": f"福建12345热线的群众满意率为99.89%[{n}]。", "cited": [n], "supported": True, "reason": None,
         "citations": [0]},
        {"text": f"全省12345热线共受理群众诉求537.2万件[{n}]。", "cited": [n], "supported": True, "reason": None,
         "citations": [0]}]
    if stream:
        assert ("".join(deltas), data["corrected"]) == (reply, False)
    # What the LLM was sent: the rules in the question's language, five numbered
    # passages with title, section and paragraph, the question; the key as a bearer token.
    body = request["body"]
    assert (body["model"], body["temperature"], body["max_completion_tokens"], bool(body.get("stream"))) == (
        "fake-model", 0.0, 512, stream)
    system, user = body["messages"]
    assert "Answer in Chinese (简体中文)" in system["content"] and "NOT_IN_ARTICLES" in system["content"]
    assert user["content"].count("\n\n[") == 5 and user["content"].endswith(f"Question: {FUJIAN}")
    assert f"[{n}] 《吉林、江苏、福建、江西" in user["content"]
    assert "· 福建：学习入脑入心，行动走深走实 · 第15段\n" in user["content"]
    assert request["authorization"] == f"Bearer {LLM_KEY}"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_a_made_up_figure_is_dropped_and_said_why(wenda, script, stream):
    made_up = "福建12345热线的群众满意率为99.89%[{n}]。全省共开通热线5000条[{n}]。"
    script(lambda body: Reply(made_up.format(n=passage_number(body, "群众满意率99.89%"))))
    if stream:
        deltas, data = ask_stream(wenda, {"question": FUJIAN})
    else:
        data = post(wenda, "/v1/ask", {"question": FUJIAN}).json()
    n = data["citations"][0]["marker"]
    assert (data["answerer"], data["answer"]) == ("llm", f"福建12345热线的群众满意率为99.89%[{n}]。")
    assert [(s["supported"], s["reason"]) for s in data["sentences"]] == [
        (True, None), (False, f"the figure 5000 is not in [{n}]")]
    assert data["sentences"][1]["citations"] == []
    if stream:
        # The words came as written; the answer event corrects them.
        assert ("".join(deltas), data["corrected"]) == (made_up.format(n=n), True)


FALLBACKS = [
    ("no citation", lambda body: Reply("福建12345热线的群众满意率为99.89%。"),
     "The LLM's reply cited no passage; this is the extractive answer.", "it cites no passage"),
    ("no such passage", lambda body: Reply("福建12345热线的群众满意率为99.89%[9]。"),
     "None of the LLM's 1 sentence was supported by the passage it cites; this is the extractive answer.",
     "it cites [9], but the prompt numbered passages 1-5"),
    ("wrong language", lambda body: Reply(f"The satisfaction rate was 99.89% [{passage_number(body, '99.89%')}]."),
     "None of the LLM's 1 sentence was supported by the passage it cites; this is the extractive answer.",
     "it is written in English; the question is in Chinese"),
    ("timeout", lambda body: Reply("太迟了[1]。", delay=TIMEOUT + 1), FAILED.format("no answer within 1 s (WENDA_LLM_TIMEOUT)"),
     None),
    ("HTTP 500", lambda body: Reply(status=500), FAILED.format("the LLM server answered HTTP 500"), None),
    ("malformed JSON", lambda body: Reply(raw='{"choices": [{"message": '),
     FAILED.format("the LLM server's reply was not valid JSON"), None),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("case", "reply", "fallback", "reason"), FALLBACKS, ids=[f[0] for f in FALLBACKS])
def test_an_unusable_reply_falls_back_to_the_extractive_answer(wenda, script, stream, case, reply, fallback, reason):
    expected = extractive(wenda)
    script(reply)
    if stream:
        deltas, data = ask_stream(wenda, {"question": FUJIAN})
        assert data.pop("corrected") is bool(deltas)
    else:
        r = post(wenda, "/v1/ask", {"question": FUJIAN})
        assert r.status_code == 200
        data = r.json()
    assert (data["answerer"], data["fallback"]) == ("extractive", fallback)
    assert (data["answer"], data["answerable"], data["confidence"]) == (
        expected["answer"], expected["answerable"], expected["confidence"])
    assert without_markers(data["citations"]) == expected["citations"]
    assert [s["reason"] for s in data["sentences"]] == ([reason] if reason else [])


def test_a_stream_cut_halfway_falls_back_after_the_words_it_sent(wenda, script):
    expected = extractive(wenda)
    script(lambda body: Reply(GOOD.format(n=1), chunk_delay=0.1, cut_after=3))
    deltas, data = ask_stream(wenda, {"question": FUJIAN})
    assert "".join(deltas) == "福建12345热线的群众"
    assert (data["answerer"], data["fallback"], data["corrected"]) == (
        "extractive", FAILED.format("the LLM server closed the connection before the reply ended"), True)
    assert data["answer"] == expected["answer"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("reply", [Reply("NOT_IN_ARTICLES"), Reply(refusal="I can't help with that.")],
                         ids=["not-in-articles", "openai-refusal"])
def test_a_refusal_by_the_model_is_a_refusal(wenda, script, stream, reply):
    script(lambda body: reply)
    if stream:
        deltas, data = ask_stream(wenda, {"question": FUJIAN})
        assert deltas == []  # NOT_IN_ARTICLES is never shown as words
    else:
        data = post(wenda, "/v1/ask", {"question": FUJIAN}).json()
    assert (data["answerer"], data["answerable"], data["answer"], data["citations"], data["fallback"]) == (
        "llm", False, NOT_FOUND_MESSAGE, [], None)
    assert data["related"][0]["passage_id"] == FUJIAN_P
