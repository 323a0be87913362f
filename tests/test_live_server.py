"""A real uvicorn on 127.0.0.1 (a random free port), started and stopped by
the test: the official OpenAI client against it, and asks that run while
another thread writes."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from conftest import SEEDS
from service.app import create_app
from service.settings import load_settings

# Real uvicorn servers on 127.0.0.1 (and a write/read race): slow, run by CI.
pytestmark = pytest.mark.slow

FUJIAN = "福建12345热线的群众满意率是多少？"
KEY = "live-key-0123456789"  # WENDA_API_KEY needs 16 characters or more
FUJIAN_QUOTE = "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%。"
# What wenda shows for FUJIAN: the clause (the candidate model ranks it above the bare figure).
FUJIAN_ANSWER = "全省12345热线共受理群众诉求537.2万件，按时办结率99.9%，反馈回复率100%，群众满意率99.89%"


@contextlib.contextmanager
def live_server(settings, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``create_app(settings)`` under uvicorn in a thread; yield its base URL.

    The socket is bound here (port 0: the OS picks a free port) and handed to
    uvicorn, so no other process can take the port in between.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def copy_index(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def server(seed_index, tmp_path_factory):
    idx = copy_index(seed_index, tmp_path_factory.mktemp("live") / "index")
    # The readers below ask as fast as they can, all from 127.0.0.1: no question limit here.
    with live_server(load_settings(index_dir=idx, corpus_dir=SEEDS, api_key=KEY, rate_limit_asks=0)) as url:
        yield url


def test_openai_client_gets_the_answer_with_citations(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0, timeout=30)
    completion = client.chat.completions.create(
        model="wenda", messages=[{"role": "system", "content": "用中文回答。"}, {"role": "user", "content": FUJIAN}])
    assert completion.model == "wenda"
    content = completion.choices[0].message.content
    assert content.startswith(FUJIAN_ANSWER + " [1]\n\n[1] ")
    assert content.endswith(f"第15段：“{FUJIAN_QUOTE}”")
    assert completion.choices[0].finish_reason == "stop"
    [citation] = completion.model_extra["citations"]
    assert (citation["article_id"], citation["paragraph"], citation["quote"]) == (
        "004_ef22c67862e0d2cc", 15, FUJIAN_QUOTE)


def test_openai_client_streaming(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0, timeout=30)
    stream = client.chat.completions.create(model="any-name", stream=True,
                                            messages=[{"role": "user", "content": FUJIAN}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith(FUJIAN_ANSWER + " [1]")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.model for c in chunks} == {"any-name"}


def test_openai_client_sees_errors_as_422(server):
    import openai

    client = openai.OpenAI(base_url=f"{server}/v1", api_key="x", max_retries=0, timeout=30)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="wenda", messages=[{"role": "user", "content": " "}])
    assert info.value.status_code == 422
    assert info.value.body == {"detail": "The question is empty; type a question."}


def test_the_api_key_never_reaches_the_logs(server):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.error.wenda")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        with httpx.Client(base_url=server, timeout=30) as http:
            body = {"id": "keylog", "title": "日志测试", "text": "日志测试\n这篇文章只为检查日志。"}
            assert http.post("/v1/articles", json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
            r = http.post("/v1/articles", json=body, headers={"Authorization": f"Bearer {KEY}-wrong"})
            assert r.status_code == 401 and "live-key" not in r.text
            assert http.delete("/v1/articles/keylog", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
    assert any("keylog" in r for r in records)  # the writes were logged ...
    assert not any("live-key" in r for r in records)  # ... the key was not


# ---- reads during writes -------------------------------------------------------------------
QINGSONG_Q = "青松镇今年新种植了多少棵银杏树？"


def qingsong(trees: int) -> dict:
    return {"id": "qingsong-2024", "title": "青松镇推进银杏种植",
            "text": f"青松镇推进银杏种植\n今年青松镇新种植银杏树{trees}棵，全镇绿化覆盖率提高到百分之四十。\n"
                    "镇政府表示，明年将继续扩大种植面积。"}


def fingerprint(answer: dict) -> tuple:
    """What a reader saw: the answer and where it came from (scores left out)."""
    return (answer["answer"], answer["answerable"],
            tuple((c["article_id"], c["paragraph"], c["start"], c["end"], c["quote"]) for c in answer["citations"]))


def test_concurrent_asks_during_writes_see_old_or_new_never_a_mix(server):
    auth = {"Authorization": f"Bearer {KEY}"}
    states = [qingsong(8848), qingsong(9600), None]  # version A, version B, deleted
    expected: dict[tuple, str] = {}
    with httpx.Client(base_url=server, timeout=60) as http:
        fujian = fingerprint(http.post("/v1/ask", json={"question": FUJIAN}).json())
        # What each state answers, asked one at a time (this also embeds both versions once).
        for i, state in enumerate(states):
            if state is None:
                assert http.delete("/v1/articles/qingsong-2024", headers=auth).status_code == 200
            else:
                assert http.post("/v1/articles", json=state, headers=auth).status_code == 200
            expected[fingerprint(http.post("/v1/ask", json={"question": QINGSONG_Q}).json())] = "ABX"[i]
    assert len(expected) == 3, "each state must answer differently"
    assert {fp[0] for fp in expected} >= {"今年青松镇新种植银杏树8848棵，全镇绿化覆盖率提高到百分之四十",
                                          "今年青松镇新种植银杏树9600棵，全镇绿化覆盖率提高到百分之四十"}

    # Each write waits until a reader has answered from the state it made, so
    # the readers are asking while the writes go on, on any machine, fast or
    # slow (this used to hope that 200 asks would overlap three rounds of writes).
    seen: list[str] = []
    failures: list[str] = []
    observed = threading.Condition()
    writes_done = threading.Event()
    deadline = time.monotonic() + 120

    def reader() -> None:
        with httpx.Client(base_url=server, timeout=60) as http:
            i = 0
            while not writes_done.is_set() and time.monotonic() < deadline:
                question = FUJIAN if i % 4 == 0 else QINGSONG_Q
                i += 1
                r = http.post("/v1/ask", json={"question": question})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text}")
                    continue
                fp = fingerprint(r.json())
                if question == FUJIAN:
                    if fp != fujian:
                        failures.append(f"Fujian answer changed: {fp}")
                elif fp not in expected:
                    failures.append(f"an answer from no state: {fp}")
                else:
                    with observed:
                        seen.append(expected[fp])
                        observed.notify_all()

    def writer() -> None:
        try:
            with httpx.Client(base_url=server, timeout=60) as http:
                for _ in range(2):
                    for name, state in zip("ABX", states):
                        if state is None:
                            r = http.delete("/v1/articles/qingsong-2024", headers=auth)
                        else:
                            r = http.post("/v1/articles", json=state, headers=auth)
                        if r.status_code != 200:
                            failures.append(f"write: {r.status_code} {r.text}")
                            return
                        with observed:
                            mark = len(seen)
                            if not observed.wait_for(lambda name=name, mark=mark: name in seen[mark:], timeout=30):
                                failures.append(f"no reader saw state {name} within 30 s of its write")
                                return
        finally:
            writes_done.set()

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    # Every state was read back after its write, twice round, while the others kept asking.
    assert set(seen) == {"A", "B", "X"}
