"""A provider that echoes the API key in its 401 body: the key is in no stored or printed byte.

Issue 12 found the key verbatim in `match.error` and `match.traceback` (16 of 16) and in
`export`, `show` and `matches`. The real openai SDK talks to a loopback server here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from arena_core.cli.main import main
from arena_core.textsafe import REDACTED, redact, secrets_from_env

pytest.importorskip("openai")

SECRET = "sk-trust-0123456789abcdefECHOED"


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        body = json.dumps(
            {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid"}}
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_an_echoed_key_is_redacted_everywhere(echo_server, tmp_path, monkeypatch, capsys) -> None:
    # A variable name that does not look like a key: the agent registers what it reads.
    monkeypatch.setenv("PROVIDER_AUTH_X", SECRET)
    cfg = tmp_path / "api.toml"
    cfg.write_text(
        f"""
[tournament]
name = "echo"
protocol = "debate"
retries = 0
timeout = 20

[protocol]
speeches = 1

[dataset]
plugin = "bundled"
limit = 2

[judge]
plugin = "quote"

[[players]]
name = "gpt"
agent = "openai"
[players.options]
model = "m"
base_url = "{echo_server}"
api_key_env = "PROVIDER_AUTH_X"
max_retries = 0

[[players]]
name = "d"
agent = "deterministic"
""",
        encoding="utf-8",
    )
    db = tmp_path / "l.db"
    url = f"sqlite:///{db}"
    assert main(["run", str(cfg), "--ledger", url]) == 1
    out, err = capsys.readouterr()
    outputs = [out, err]
    assert main(["matches", "--ledger", url, "--status", "failed"]) == 0
    outputs.append(capsys.readouterr().out)
    assert main(["matches", "--ledger", url, "--format", "json"]) == 0
    lines = capsys.readouterr().out
    outputs.append(lines)
    first = json.loads(lines.splitlines()[0])
    assert "Incorrect API key provided: " + REDACTED in first["error"]
    assert main(["show", first["id"], "--ledger", url]) == 0
    outputs.append(capsys.readouterr().out)
    assert main(["export", "--ledger", url]) == 0
    outputs.append(capsys.readouterr().out)
    for text in outputs:
        assert SECRET not in text
    for path in tmp_path.iterdir():  # the db, its WAL and shm
        assert SECRET.encode() not in path.read_bytes(), path.name


def test_environment_keys_are_redacted_from_output() -> None:
    secrets_from_env({"SOME_API_KEY": "k-abcdefgh12345", "HOME": "/root/long-enough-path"})
    assert redact("token k-abcdefgh12345 here") == f"token {REDACTED} here"
    assert redact("/root/long-enough-path") == "/root/long-enough-path"
