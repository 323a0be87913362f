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
    """wenda under uvicorn on 127.0.0.1, pointed at the scripted LLM. The LLM
    is asked even when the extractive model refuses (WENDA_LLM_SKIP_SHARE=0),
    so that what is shown depends on the script alone; the cut has its own test."""
    with live_server(llm_settings(seed_dir, llm.url, llm_skip_share=0)) as url:
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


# ---- the check, piece by piece ---------------------------------------------------------------------
def test_a_reply_is_split_into_sentences_with_their_marks():
    from retriever.generate import cited_numbers, split_reply

    reply = "湖北配备大学生乡村医生4777人。[1] 并录取1538人[1,2]！\nThe rate was 99.89% [3]. 另有说明【4】"
    assert split_reply(reply) == ["湖北配备大学生乡村医生4777人。[1]", "并录取1538人[1,2]！",
                                  "The rate was 99.89% [3].", "另有说明【4】"]
    assert [cited_numbers(s) for s in split_reply(reply)] == [(1,), (1, 2), (3,), (4,)]


def _passage(text: str, title: str = "福建新闻", section: str | None = "福建：学习入脑入心"):
    from ingest.models import Passage

    return Passage("a:3", "a", title, section, 3, 0, 100, 100 + len(text), text)


@pytest.mark.parametrize(("sentence", "supported", "reason"), [
    # Figures compare as values: 1310万余 = 13,100,000 = 1310万; Chinese numerals and 成 too.
    ("接待参访1310万余人次[1]。", True, None),
    ("接待参访13,100,000人次[1]。", True, None),
    ("接待参访一千三百一十万人次[1]。", True, None),
    ("满意度提高了两成[1]。", True, None),
    ("接待参访1300万人次[1]。", False, "the figure 1.3e+07 is not in [1]"),
    ("11月29日福建召开全会[1]。", True, None),
    ("11月28日福建召开全会[1]。", False, "the date 11月28日 is not in [1]"),
    ("2021年11月29日福建召开全会[1]。", False, "the figure 2021 is not in [1]"),
    ("江西接待参访1310万余人次[1]。", False, "the name 江西 is not in [1]"),
    ("这项工作受到群众好评[1]。", False, "only 0% of its wording is in [1]"),
    ("全省设立党史学习教育学习点[1]。", True, None),
    ("全省设立党史学习教育学习点[2]。", False, "it cites [2], but the prompt numbered passages 1-1"),
    ("全省设立党史学习教育学习点。", False, "it cites no passage"),
])
def test_each_sentence_is_checked_against_the_passage_it_cites(sentence, supported, reason):
    from retriever.generate import check_sentence

    text = "11月29日，福建召开全会。截至11月底，全省共设立党史学习教育学习点1211个，接待参访1310万余人次。满意度提高20%。"
    check = check_sentence(sentence, [_passage(text)])
    assert (check.supported, check.reason) == (supported, reason)


def test_the_quote_is_the_supporting_sentence_with_article_offsets():
    from retriever.generate import check_sentence

    text = "11月29日，福建召开全会。截至11月底，全省共设立党史学习教育学习点1211个，接待参访1310万余人次。满意度提高20%。"
    p = _passage(text)
    [c] = check_sentence("福建接待参访1310万余人次[1]。", [p], scores=[0.5]).citations
    quote = "截至11月底，全省共设立党史学习教育学习点1211个，接待参访1310万余人次。"
    assert (c.quote, c.start, c.end, c.score) == (quote, 100 + text.index(quote), 100 + text.index(quote) + len(quote),
                                                  0.5)
    assert p.text[c.start - p.start:c.end - p.start] == c.quote


def test_english_sentences_are_checked_by_value_and_place():
    from retriever.generate import check_sentence

    p = _passage("湖北为基层配备大学生乡村医生4777人，接待参访1310万余人次。", title="湖北新闻", section="湖北：落实实事项目")
    check = lambda s: check_sentence(s, [p], lang="en")  # noqa: E731
    assert check("Hubei placed 4,777 college-educated village doctors [1].").supported
    assert check("It received 13.1 million visits [1].").supported
    assert check("Fujian placed 4,777 village doctors [1].").reason == "the name 福建 is not in [1]"
    assert check("湖北配备了4777名大学生乡村医生[1]。").reason == "it is written in Chinese; the question is in English"


# ---- follow-ups --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("message", "previous", "expected"), [
    ("那江西呢？", [FUJIAN], "江西12345热线的群众满意率是多少？"),
    ("江西呢", [FUJIAN], "江西12345热线的群众满意率是多少？"),
    ("它是哪一年成立的？", [FUJIAN], "福建12345热线是哪一年成立的？"),
    ("那云南呢？", [FUJIAN, "那江西呢？"], "云南12345热线的群众满意率是多少？"),
    ("那广西呢？", ["湖北为基层配备了多少名大学生乡村医生？"], "广西为基层配备了多少名大学生乡村医生？"),
    ("那2020年呢？", ["2021年福建完成了多少办实事项目？"], "2020年福建完成了多少办实事项目？"),
    ("What about Jiangxi?", ["What was the satisfaction rate of Fujian's 12345 hotline?"],
     "What was the satisfaction rate of Jiangxi's 12345 hotline?"),
    # A question that stands alone is left as it is.
    ("湖北为基层配备了多少名大学生乡村医生？", [FUJIAN], "湖北为基层配备了多少名大学生乡村医生？"),
    ("那江西呢？", [], "那江西呢？"),
])
def test_follow_ups_carry_the_previous_frame_without_an_llm(message, previous, expected):
    from retriever.followup import standalone

    assert standalone(message, previous) == expected


JIANGXI = "江西12345热线的群众满意率是多少？"
CONVERSATION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": FUJIAN},
                {"role": "assistant", "content": "99.89% [1]"}, {"role": "user", "content": "那江西呢？"}]


def test_chat_follow_up_without_an_llm_asks_about_jiangxi(plain):
    r = post(plain, "/v1/chat/completions", {"messages": CONVERSATION})
    assert r.status_code == 200
    data = r.json()
    assert (data["question"], data["rewritten_by"]) == (JIANGXI, "rules")
    ask = post(plain, "/v1/ask", {"question": JIANGXI}).json()
    assert (data["answerable"], data["citations"]) == (ask["answerable"], ask["citations"]) == (False, [])
    # The articles give Fujian's rate, not Jiangxi's: an honest refusal that names the question.
    assert data["choices"][0]["message"]["content"] == f"问题：{JIANGXI}\n\n{NOT_FOUND_MESSAGE}"
    assert "answerer" not in data  # no LLM: the response is as before, plus the question
    r = post(plain, "/v1/chat/completions", {"messages": [*CONVERSATION[:3], {"role": "user",
                                                                             "content": "它是哪一年成立的？"}]})
    assert (r.json()["question"], r.json()["rewritten_by"]) == ("福建12345热线是哪一年成立的？", "rules")
    # A single question is not rewritten, and its reply is as it was.
    data = post(plain, "/v1/chat/completions", {"messages": [{"role": "user", "content": FUJIAN}]}).json()
    assert (data["question"], data["rewritten_by"]) == (FUJIAN, None)
    assert not data["choices"][0]["message"]["content"].startswith("问题：")


def rewriter(rewrite: Reply, answer: Reply):
    """A script: the rewrite request gets ``rewrite``, the answer request ``answer``."""
    return lambda body: rewrite if "Standalone question:" in prompt_text(body) else answer


def test_chat_follow_up_with_an_llm_through_the_openai_client(wenda, llm, script):
    from openai import OpenAI

    client = OpenAI(base_url=f"{wenda}/v1", api_key="unused", max_retries=0, timeout=30)
    script(rewriter(Reply(JIANGXI), Reply("NOT_IN_ARTICLES")))
    completion = client.chat.completions.create(model="wenda", messages=CONVERSATION)
    assert completion.choices[0].message.content == f"问题：{JIANGXI}\n\n{NOT_FOUND_MESSAGE}"
    extra = completion.model_extra
    assert (extra["question"], extra["rewritten_by"], extra["answerable"], extra["answerer"]) == (
        JIANGXI, "llm", False, "llm")
    rewrite_request, answer_request = (r["body"] for r in llm.requests)
    assert "User: 福建12345热线的群众满意率是多少？\nAssistant: 99.89% [1]\n\nLast message: 那江西呢？" in \
        rewrite_request["messages"][1]["content"]
    assert answer_request["messages"][1]["content"].endswith(f"Question: {JIANGXI}")
    # Streamed, the same words arrive in pieces.
    script(rewriter(Reply(JIANGXI), Reply("NOT_IN_ARTICLES")))
    chunks = list(client.chat.completions.create(model="wenda", messages=CONVERSATION, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == f"问题：{JIANGXI}\n\n{NOT_FOUND_MESSAGE}"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra["question"], chunks[-1].model_extra["answerable"]) == (JIANGXI, False)


@pytest.mark.parametrize("bad", [
    Reply(status=500),
    # An answer instead of a question (the README's scripted server replies so): not used.
    Reply("福建12345热线的群众满意率为99.89%[1]。"),
], ids=["http-500", "an-answer"])
def test_a_failed_llm_rewrite_falls_back_to_the_rules(wenda, script, bad):
    script(rewriter(bad, Reply("NOT_IN_ARTICLES")))
    data = post(wenda, "/v1/chat/completions", {"messages": CONVERSATION}).json()
    assert (data["question"], data["rewritten_by"], data["answerable"]) == (JIANGXI, "rules", False)


def test_openai_client_streams_a_checked_answer(wenda, script):
    from openai import OpenAI

    client = OpenAI(base_url=f"{wenda}/v1", api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": FUJIAN}]
    script(lambda body: Reply(GOOD.format(n=passage_number(body, "群众满意率99.89%")), chunk_delay=0.01))
    whole = client.chat.completions.create(model="wenda", messages=messages)
    content = whole.choices[0].message.content
    n = whole.model_extra["citations"][0]["marker"]
    title = "吉林、江苏、福建、江西——把办实事任务要求落到实处（奋斗百年路 启航新征程·学党史 悟思想 办实事 开新局）"
    assert content == (f"{GOOD.format(n=n)}\n\n[{n}] {title} · 福建：学习入脑入心，行动走深走实 · 第15段："
                       f"“{FUJIAN_QUOTE}”")
    chunks = list(client.chat.completions.create(model="wenda", messages=messages, stream=True))
    deltas = [c.choices[0].delta.content or "" for c in chunks]
    assert len(deltas) > 5 and "".join(deltas) == content  # token by token, then the citations
    assert (chunks[-1].model_extra["corrected"], chunks[-1].model_extra["answer"]) == (False, GOOD.format(n=n))
    # A dropped sentence: the words came as written, then the checked reply after a line saying so.
    made_up = "福建12345热线的群众满意率为99.89%[{n}]。全省共开通热线5000条[{n}]。"
    script(lambda body: Reply(made_up.format(n=passage_number(body, "群众满意率99.89%"))))
    chunks = list(client.chat.completions.create(model="wenda", messages=messages, stream=True))
    checked = f"福建12345热线的群众满意率为99.89%[{n}]。"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        f"{made_up.format(n=n)}\n\n核对后的回答（删去了引文不支持的句子） Checked answer, unsupported sentences removed:\n"
        f"{checked}\n\n[{n}] {title} · 福建：学习入脑入心，行动走深走实 · 第15段：“{FUJIAN_QUOTE}”")
    last = chunks[-1].model_extra
    assert (last["corrected"], last["answer"], [s["supported"] for s in last["sentences"]]) == (
        True, checked, [True, False])


def test_asking_for_the_llm_without_one_is_503_with_what_to_set(plain):
    r = post(plain, "/v1/ask", {"question": FUJIAN, "answerer": "llm"})
    assert (r.status_code, r.json()) == (503, {"detail": "No LLM is configured; set WENDA_LLM_BASE_URL and "
                                                         "WENDA_LLM_MODEL (see the README's LLM section), or ask "
                                                         "with the extractive answerer."})


def test_a_confident_extractive_refusal_never_reaches_the_llm(seed_dir, llm, script):
    from service.engine import Wenda

    script(lambda body: Reply("NOT_IN_ARTICLES"))
    # min_confidence 1.0: the extractive model refuses everything; skip share 1: all of it is confident.
    engine = Wenda(llm_settings(seed_dir, llm.url, min_confidence=1.0, llm_skip_share=1.0))
    answer = engine.ask_llm(FUJIAN)
    assert llm.requests == []
    assert (answer.answerer, answer.answerable, answer.answer) == ("extractive", False, NOT_FOUND_MESSAGE)
    assert answer.fallback == (f"The extractive answerability model refused with confidence {answer.confidence:.2f}, "
                               "under 1 of its threshold 1.00 (WENDA_LLM_SKIP_SHARE), so the LLM was not asked.")
    # With the cut at 0 the same refusal goes to the LLM, whose answer is checked as ever.
    engine = Wenda(llm_settings(seed_dir, llm.url, min_confidence=1.0, llm_skip_share=0.0))
    script(lambda body: Reply(GOOD.format(n=passage_number(body, "群众满意率99.89%"))))
    answer = engine.ask_llm(FUJIAN)
    assert (len(llm.requests), answer.answerer, answer.answerable) == (1, "llm", True)


def test_cli_ask_with_the_llm(seed_dir, llm, script, monkeypatch):
    from click.testing import CliRunner

    from service.cli import cli

    for key, value in {"WENDA_LLM_BASE_URL": llm.url, "WENDA_LLM_MODEL": "fake-model", "WENDA_LLM_API_KEY": LLM_KEY,
                       "WENDA_LLM_TIMEOUT": "1", "WENDA_LLM_MAX_RETRIES": "0", "WENDA_LLM_SKIP_SHARE": "0"}.items():
        monkeypatch.setenv(key, value)
    made_up = "福建12345热线的群众满意率为99.89%[{n}]。全省共开通热线5000条[{n}]。"
    script(lambda body: Reply(made_up.format(n=passage_number(body, "群众满意率99.89%"))))
    r = CliRunner().invoke(cli, ["--index-dir", str(seed_dir), "ask", FUJIAN, "--answerer", "llm"])
    n = passage_number(llm.requests[-1]["body"], "群众满意率99.89%")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [f"福建12345热线的群众满意率为99.89%[{n}]。",
                                     f"[{n}] [吉林、江苏、福建、江西——把办实事任务要求落到实处（奋斗百年路 启航新征程·学党史 悟思想 "
                                     f"办实事 开新局） · 第15段] “{FUJIAN_QUOTE}”"]
    assert r.stderr.splitlines() == [f"Dropped: 全省共开通热线5000条[{n}]。 (the figure 5000 is not in [{n}])"]
    assert LLM_KEY not in r.output
    # The LLM down: the extractive answer, and a note on stderr.
    script(lambda body: Reply(status=500))
    r = CliRunner().invoke(cli, ["--index-dir", str(seed_dir), "ask", FUJIAN, "--json"])
    data = json.loads(r.stdout)
    assert (r.exit_code, data["answerer"], data["fallback"]) == (
        0, "extractive", FAILED.format("the LLM server answered HTTP 500"))
    # Without an LLM configured, --answerer llm is one line and exit 1.
    monkeypatch.delenv("WENDA_LLM_BASE_URL")
    monkeypatch.delenv("WENDA_LLM_MODEL")
    r = CliRunner().invoke(cli, ["--index-dir", str(seed_dir), "ask", FUJIAN, "--answerer", "llm"])
    assert (r.exit_code, r.stderr) == (1, "Error: No LLM is configured; set WENDA_LLM_BASE_URL and WENDA_LLM_MODEL "
                                          "(see the README's LLM section), or ask with the extractive answerer.\n")


def test_ask_with_history_answers_the_follow_up(plain):
    data = post(plain, "/v1/ask", {"question": "那江西呢？", "history": [FUJIAN]}).json()
    assert (data["question"], data["rewritten_by"]) == (JIANGXI, "rules")
    same = post(plain, "/v1/ask", {"question": JIANGXI}).json()
    assert (data["answer"], data["citations"], "rewritten_by" in same) == (same["answer"], same["citations"], False)
    r = post(plain, "/v1/ask", {"question": "那江西呢？", "history": [FUJIAN] * 21})
    assert (r.status_code, r.json()["detail"]) == (422, "body.history: List should have at most 20 items after "
                                                         "validation, not 21")


# ---- eval --------------------------------------------------------------------------------------------
def copy_first_passage(body: dict) -> Reply:
    """A faithful LLM: the first sentence of passage [1], cited."""
    import re

    first = re.search(r"^\[1\] [^\n]*\n([^\n]*)", prompt_text(body), re.M).group(1)
    return Reply(re.split(r"(?<=[。！？])", first)[0] + "[1]")


def test_eval_with_the_llm_scores_sentences_and_catches_made_up_ones(seed_dir, llm, script, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from service.cli import cli

    for key, value in {"WENDA_LLM_BASE_URL": llm.url, "WENDA_LLM_MODEL": "fake-model", "WENDA_LLM_TIMEOUT": "1",
                       "WENDA_LLM_MAX_RETRIES": "0", "WENDA_LLM_SKIP_SHARE": "0"}.items():
        monkeypatch.setenv(key, value)
    script(copy_first_passage)
    r = CliRunner().invoke(cli, ["--index-dir", str(seed_dir), "eval", "--answerer", "llm", "--limit", "3",
                                 "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "seed-limit3-llm.json").read_text(encoding="utf-8"))
    # Each answer is the whole first sentence of paragraph 4 (gold inside, F1 low: the
    # sentence is long); every sentence is kept; each made-up variant is caught.
    assert (result["questions"], result["answers"]["by_llm"], result["answers"]["contains_gold"]) == (3, 1.0, 1.0)
    assert result["answers"]["f1"] == pytest.approx(0.0408, abs=1e-4)
    assert (result["sentences"], result["fallbacks"]) == (
        {"total": 3, "supported": 3, "supported_share": 1.0, "dropped_because": {}}, {})
    assert result["caught"] == {"figure_mutants": 3, "figure_caught": 3, "citation_mutants": 3, "citation_caught": 3,
                                "caught_share": 1.0}
    assert "| made-up sentences caught | 1.000 |" in r.stdout
    assert r.stdout.splitlines()[-1] == f"wrote {tmp_path / 'seed-limit3-llm.json'}"


def test_list_items_and_partial_refusals():
    from retriever.generate import is_refusal, split_reply

    from retriever.generate import _join

    items = split_reply("1. 湖北配备4777人[1]\n2. 录取1538人[1]")
    assert (items, _join(items)) == (["1. 湖北配备4777人[1]", "2. 录取1538人[1]"], "1. 湖北配备4777人[1]\n2. 录取1538人[1]")
    assert _join(["It was 99.89% [1].", "It rose [2]."]) == "It was 99.89% [1]. It rose [2]."
    assert [is_refusal(r) for r in ("NOT_IN_ARTICLES", " NOT IN THE ARTICLES.", "资料中没有提及江西的满意率。",
                                    "福建为99.89%[1]。江西的满意率NOT_IN_ARTICLES。")] == [True, True, True, False]


@pytest.mark.slow
def test_a_stream_that_stalls_past_the_timeout_falls_back(wenda, script):
    script(lambda body: Reply(GOOD.format(n=1), chunk_delay=TIMEOUT + 0.5))
    deltas, data = ask_stream(wenda, {"question": FUJIAN})
    assert (deltas, data["answerer"], data["fallback"]) == (
        [], "extractive", FAILED.format("no answer within 1 s (WENDA_LLM_TIMEOUT)"))


@pytest.mark.parametrize(("case", "reply", "fallback", "reason"), FALLBACKS, ids=[f[0] for f in FALLBACKS])
def test_openai_client_gets_the_extractive_reply_and_why(wenda, plain, script, case, reply, fallback, reason):
    from openai import OpenAI

    messages = [{"role": "user", "content": FUJIAN}]
    expected = post(plain, "/v1/chat/completions", {"messages": messages}).json()
    script(reply)
    client = OpenAI(base_url=f"{wenda}/v1", api_key="unused", max_retries=0, timeout=30)
    completion = client.chat.completions.create(model="wenda", messages=messages)
    assert completion.choices[0].message.content == f"（{fallback}）\n\n{expected['choices'][0]['message']['content']}"
    extra = completion.model_extra
    assert (extra["answerer"], extra["fallback"], extra["answerable"]) == ("extractive", fallback, expected["answerable"])
    assert without_markers(extra["citations"]) == expected["citations"]
