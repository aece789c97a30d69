"""A loopback HTTP server speaking the OpenAI chat-completions and Anthropic messages protocols.

Not a test file: the API agents' tests (and benchmarks/api_concurrency.py) point the real
`openai` and `anthropic` SDKs at it, so the SDKs' own request building, retries, timeouts and
response parsing run for real; nothing in the SDKs is mocked.

- `POST /v1/chat/completions`: `n` choices, `usage`, `logprobs` / `top_logprobs` (the reply is
  split into word and punctuation tokens; the token after "Answer:" gets the alternatives in
  `label_probs`, every other token a confident logprob).
- `POST /v1/messages`: an Anthropic Messages reply with `usage`.
- `latency` seconds per request (the only sleep); `faults`: statuses answered, one per request,
  before normal service resumes (e.g. [429, 500] then 200), with a `retry-after-ms` header so the
  SDKs' backoff stays short. Every request is recorded (path, headers, JSON body).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")

Reply = Callable[[list[dict[str, Any]], int], str]


def default_reply(messages: list[dict[str, Any]], i: int) -> str:
    """A deterministic reply that depends on the prompt: its last user words, echoed."""
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    content = last["content"]
    if isinstance(content, list):  # Anthropic content blocks
        content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    words = str(content).split()[-6:]
    suffix = f" (sample {i + 1})" if i else ""
    return f"Reply to: {' '.join(words) or 'nothing'}.{suffix}"


def tokens_of(text: str) -> list[str]:
    return TOKEN.findall(text)


class FakeAPIServer:
    """Start with `with FakeAPIServer() as s:`; `s.base_url` is the OpenAI base URL (/v1)."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        reply: Reply = default_reply,
        label_probs: dict[str, float] | None = None,
    ) -> None:
        self.latency = latency
        self.reply = reply
        self.label_probs = label_probs
        self.faults: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the SDKs reuse pooled connections
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
            # and the client's delayed ACK add ~40 ms to every call on a kept-alive connection.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256  # a burst of 32+ connections must not hit SYN retries
        self.httpd.server_bind()
        self.httpd.server_activate()
        self.port = self.httpd.server_address[1]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def __enter__(self) -> FakeAPIServer:
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- handling ---------------------------------------------------------------------------------

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        if status in (429, 500, 503):
            h.send_header("retry-after-ms", "5")
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        with self.lock:
            self.requests.append(
                {
                    "path": h.path,
                    "headers": {k.lower(): v for k, v in h.headers.items()},
                    "body": body,
                }
            )
            fault = self.faults.pop(0) if self.faults else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            anthropic = h.path.rstrip("/").endswith("/messages")
            if fault is not None:
                self._send(h, fault, self._error(fault, anthropic))
            elif anthropic:
                self._send(h, 200, self._anthropic(body))
            elif h.path.rstrip("/").endswith("/chat/completions"):
                self._send(h, 200, self._openai(body))
            else:
                self._send(h, 404, {"error": {"message": f"no route {h.path}", "type": "invalid"}})
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def _error(status: int, anthropic: bool) -> dict[str, Any]:
        kind = "rate_limit_error" if status == 429 else "api_error"
        message = f"injected {status}"
        if anthropic:
            return {"type": "error", "error": {"type": kind, "message": message}}
        return {"error": {"message": message, "type": kind, "code": None}}

    def _logprobs(self, text: str, top: int) -> dict[str, Any]:
        toks = tokens_of(text)
        content = []
        for i, tok in enumerate(toks):
            before = "".join(toks[max(0, i - 2) : i]).strip()
            if self.label_probs and before.endswith("Answer:"):
                alts = sorted(self.label_probs.items(), key=lambda kv: -kv[1])
                alts = [(f" {label}", math.log(p)) for label, p in alts]
                chosen = dict(alts).get(tok, -0.05)
            else:
                chosen = -0.05
                alts = [(tok, chosen), (" zzz", -4.0)]
            content.append(
                {
                    "token": tok,
                    "logprob": chosen,
                    "bytes": list(tok.encode()),
                    "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode())}
                        for t, lp in alts[:top]
                    ],
                }
            )
        return {"content": content, "refusal": None}

    def _openai(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        n = int(body.get("n") or 1)
        choices = []
        completion = 0
        for i in range(n):
            text = self.reply(messages, i)
            stop = body.get("stop") or []
            for s in [stop] if isinstance(stop, str) else stop:
                if s and s in text:
                    text = text[: text.index(s)]
            completion += len(tokens_of(text))
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
            if body.get("logprobs"):
                choice["logprobs"] = self._logprobs(text, int(body.get("top_logprobs") or 0))
            choices.append(choice)
        prompt = sum(len(tokens_of(str(m.get("content", "")))) for m in messages)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    def _anthropic(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        text = self.reply(messages, 0)
        for s in body.get("stop_sequences") or []:
            if s and s in text:
                text = text[: text.index(s)]
        system = body.get("system") or ""
        if isinstance(system, list):
            system = " ".join(b.get("text", "") for b in system)
        prompt = len(tokens_of(system)) + sum(
            len(tokens_of(json.dumps(m.get("content", "")))) for m in messages
        )
        return {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": len(tokens_of(text))},
        }


def main() -> None:
    """Serve until killed, printing the port on the first line (benchmarks run it apart, so
    its threads do not compete with the client's event loop for the GIL)."""
    import argparse

    ap = argparse.ArgumentParser(description="loopback OpenAI/Anthropic-compatible server")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = ap.parse_args()
    server = FakeAPIServer(latency=args.latency)
    print(server.port, flush=True)
    server.httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
