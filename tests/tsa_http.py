"""A tiny real HTTP server on 127.0.0.1 for TSA tests: each test scripts the replies.

`stub_server(reply)` runs a ThreadingHTTPServer on a free loopback port in a daemon
thread and yields its base URL; ``reply`` gets every request and returns what to send.
The server is shut down and closed when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class StubRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubReply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Iterable[bytes] = b""


Reply = Callable[[StubRequest], StubReply]


class _Handler(http.server.BaseHTTPRequestHandler):
    reply: Reply
    requests: list[StubRequest]
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = StubRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length),
        )
        self.requests.append(request)
        reply = self.reply(request)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if isinstance(reply.body, bytes):
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
            return
        # A streamed body without a length: the client sees it chunk by chunk.
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for chunk in reply.body:
                self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Stub:
    url: str
    requests: list[StubRequest]


@contextlib.contextmanager
def stub_server(reply: Reply) -> Iterator[Stub]:
    """Serve ``reply`` on 127.0.0.1 (a free port) until the block ends."""
    requests: list[StubRequest] = []
    handler = type("Handler", (_Handler,), {"reply": staticmethod(reply),
                                            "requests": requests})  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Stub(f"http://127.0.0.1:{server.server_address[1]}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
