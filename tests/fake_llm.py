"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and for
trying wenda's LLM answers without a model (``python tests/fake_llm.py``).

It speaks ``POST /v1/chat/completions``, streaming (server-sent
``chat.completion.chunk`` events, chunked transfer encoding) and not. What it
answers is scripted: ``server.script`` is a function of the request body
returning a ``Reply``; ``server.requests`` records every body it got.

A ``Reply`` can also misbehave the ways real servers do: answer late
(``delay``), with an error status, with a body that is not JSON, or stop a
stream halfway by closing the connection without ending the chunked body.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Args:
        content: the assistant's text.
        status: HTTP status (an error body is sent for status >= 400).
        delay: seconds to wait before answering.
        raw: a body sent as is, instead of a completion (e.g. malformed JSON).
        chunk_chars: characters per streamed content chunk.
        chunk_delay: seconds between streamed chunks.
        cut_after: close the stream after this many content chunks (no end, no [DONE]).
        refusal: OpenAI's ``message.refusal`` (a safety refusal), with no content.
    """

    content: str = ""
    status: int = 200
    delay: float = 0.0
    raw: str | None = None
    chunk_chars: int = 4
    chunk_delay: float = 0.0
    cut_after: int | None = None
    refusal: str | None = None


def prompt_text(body: dict) -> str:
    """All message contents of a request, joined (what a script looks at)."""
    return "\n".join(str(m.get("content") or "") for m in body.get("messages", []))


def passage_number(body: dict, needle: str) -> int:
    """The number [n] wenda gave the passage holding ``needle`` in its prompt."""
    text = prompt_text(body)
    for m in re.finditer(r"^\[(\d+)\]", text, re.M):
        end = text.find("\n[", m.end())
        if needle in text[m.end(): end if end != -1 else len(text)]:
            return int(m.group(1))
    raise AssertionError(f"no passage holding {needle!r} in the prompt")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeLLM  # type: ignore[assignment]

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append({"path": self.path, "body": body,
                                     "authorization": self.headers.get("Authorization")})
        reply = self.server.script(body)
        if reply.delay:
            time.sleep(reply.delay)
        if not self.path.endswith("/chat/completions"):
            return self._send(404, json.dumps({"error": {"message": "not found"}}))
        if reply.raw is not None:
            return self._send(reply.status, reply.raw)
        if reply.status >= 400:
            return self._send(reply.status, json.dumps({"error": {"message": "scripted failure", "type": "server_error"}}))
        if body.get("stream"):
            return self._stream(body, reply)
        message = {"role": "assistant", "content": None if reply.refusal else reply.content}
        if reply.refusal:
            message["refusal"] = reply.refusal
        self._send(200, json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}, ensure_ascii=False))

    def _send(self, status: int, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: str) -> None:
        raw = data.encode("utf-8")
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _stream(self, body: dict, reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(delta: dict, finish: str | None = None) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                     "model": body.get("model", "fake"),
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self._chunk(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n")

        event({"role": "assistant", "content": ""})
        if reply.refusal:
            event({"refusal": reply.refusal})
        pieces = [reply.content[i:i + reply.chunk_chars] for i in range(0, len(reply.content), reply.chunk_chars)]
        for n, piece in enumerate(pieces):
            if reply.cut_after is not None and n == reply.cut_after:
                # Gone mid-stream: the chunked body never ends.
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if reply.chunk_delay:
                time.sleep(reply.chunk_delay)
            event({"content": piece})
        event({}, "stop")
        self._chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeLLM(ThreadingHTTPServer):
    """The server; ``url`` is its OpenAI base URL (``http://127.0.0.1:PORT/v1``)."""

    daemon_threads = True

    def __init__(self, script: Callable[[dict], Reply] | None = None, *, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.script: Callable[[dict], Reply] = script or (lambda body: Reply("NOT_IN_ARTICLES"))
        self.requests: list[dict] = []
        self._thread = threading.Thread(target=self.serve_forever, name="fake-llm", daemon=True)

    def handle_error(self, request, client_address) -> None:
        """Quiet about clients that hung up (wenda's timeout tests do)."""
        import sys

        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


if __name__ == "__main__":
    # A demo for the README: a cited answer about Fujian's hotline, else "not in the articles".
    import sys

    def demo(body: dict) -> Reply:
        if "群众满意率99.89%" in prompt_text(body) and "standalone" not in prompt_text(body):
            return Reply(f"福建12345热线的群众满意率为99.89%[{passage_number(body, '群众满意率99.89%')}]。")
        return Reply("NOT_IN_ARTICLES")

    server = FakeLLM(demo, port=int(sys.argv[1]) if len(sys.argv) > 1 else 8765)
    print(f"fake LLM at {server.url} (Ctrl-C stops)")
    server.serve_forever()
