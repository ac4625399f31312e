"""A real HTTP server on a loopback address for the fetch tests: files, redirects, 404s, a slow
endpoint, a response without a length, hostile ones (a page that never ends, a server that
drips a byte a second), and a record of every request it was sent and every byte it wrote."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".html": "text/html; charset=utf-8",
    ".rss": "application/rss+xml",
    ".xml": "application/xml",
    ".mpd": "application/dash+xml",
    ".txt": "text/plain; charset=utf-8",
}
CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the record in LocalServer.requests is the log

    def _answer(self, send_body: bool) -> None:
        self.server.record(RecordedRequest(self.command, self.path, dict(self.headers.items())))
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        try:
            if parts.path == "/redirect":
                self._redirect(query["to"][0], int(query.get("status", ["302"])[0]))
            elif parts.path == "/slow":
                # Waits on the server's stop event, so closing the server never waits for it.
                self.server.stopping.wait(float(query.get("seconds", ["5"])[0]))
                self._send(b"slow answer", "text/plain", send_body)
            elif parts.path == "/endless":
                self._endless(query.get("type", ["text/html"])[0], send_body)
            elif parts.path == "/drip":
                self._drip(
                    query.get("type", ["text/html"])[0],
                    float(query.get("every", ["1"])[0]),
                    int(query.get("length", ["0"])[0]),
                    send_body,
                )
            elif parts.path.startswith("/slowly/"):
                seconds = float(query.get("seconds", ["5"])[0])
                self._send_slowly(parts.path.removeprefix("/slowly/"), seconds, send_body)
            elif parts.path.startswith("/stream/"):
                self._send_file(parts.path.removeprefix("/stream/"), send_body, length=False)
            else:
                self._send_file(parts.path.lstrip("/"), send_body, length=True)
        except (BrokenPipeError, ConnectionResetError):
            pass  # yt-dlp closes early when it has read enough, as clients may

    def _redirect(self, target: str, status: int) -> None:
        self.send_response(status)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, body: bytes, content_type: str, send_body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _endless(self, content_type: str, send_body: bool) -> None:
        """A body with no length that never ends, as fast as the client reads it."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.close_connection = True
        self.end_headers()
        chunk = b"<p>" + b"all work and no play " * 3000 + b"</p>\n"
        while send_body and not self.server.stopping.is_set():
            self.wfile.write(chunk)
            self.server.count(self.path, len(chunk))

    def _drip(self, content_type: str, every: float, length: int, send_body: bool) -> None:
        """One byte every `every` seconds, for ever (or until `length` bytes, if given)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(length))
        self.close_connection = True
        self.end_headers()
        self.wfile.flush()
        sent = 0
        while send_body and (not length or sent < length):
            if self.server.stopping.wait(every):
                return
            self.wfile.write(b"\0" if content_type.startswith("audio") else b" ")
            self.wfile.flush()
            sent += 1
            self.server.count(self.path, 1)

    def _send_slowly(self, name: str, seconds: float, send_body: bool) -> None:
        """A file whose bytes are spread evenly over `seconds`."""
        path = (self.server.root / name).resolve()
        if not name or not path.is_file() or self.server.root not in path.parents:
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        pieces = 50
        for start in range(0, len(data), max(1, len(data) // pieces)):
            if not send_body or self.server.stopping.wait(seconds / pieces):
                return
            piece = data[start : start + max(1, len(data) // pieces)]
            self.wfile.write(piece)
            self.wfile.flush()
            self.server.count(self.path, len(piece))

    def _send_file(self, name: str, send_body: bool, length: bool) -> None:
        path = (self.server.root / name).resolve()
        if not name or not path.is_file() or self.server.root not in path.parents:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES.get(path.suffix, "application/octet-stream"))
        if length:
            self.send_header("Content-Length", str(path.stat().st_size))
        else:
            # HTTP/1.0 without a length: the body ends when the connection closes.
            self.close_connection = True
        self.end_headers()
        if send_body:
            with path.open("rb") as file:
                shutil.copyfileobj(file, self.wfile, CHUNK)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path) -> None:
        super().__init__(address, _Handler)
        self.root = root.resolve()
        self.stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.sent: dict[str, int] = {}
        self.last_write = time.monotonic()
        self._lock = threading.Lock()

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def count(self, path: str, size: int) -> None:
        with self._lock:
            self.sent[path] = self.sent.get(path, 0) + size
            self.last_write = time.monotonic()


class LocalServer:
    """One server on `host` (any loopback address) and a free port, serving files from `root`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.root = Path(tempfile.mkdtemp(prefix="test-http-root-"))
        self._server = _Server((host, 0), self.root)
        self.port: int = self._server.server_address[1]
        # A short poll interval keeps close() (which waits for one poll) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"http-{host}:{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request seen so far, in order."""
        with self._server._lock:
            return list(self._server.requests)

    def bytes_sent(self, path: str) -> int:
        """Body bytes written so far to requests for `path` (hostile endpoints only)."""
        with self._server._lock:
            return sum(size for sent, size in self._server.sent.items() if sent == path)

    @property
    def seconds_since_last_write(self) -> float:
        with self._server._lock:
            return time.monotonic() - self._server.last_write

    @property
    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def redirect_url(self, target: str, status: int = 302) -> str:
        return self.url(f"redirect?status={status}&to={quote(target, safe='')}")

    def add_file(self, name: str, content: bytes | str) -> str:
        """Serve `content` at /name; returns its URL."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return self.url(name)

    def close(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def http_server_factory() -> Iterator[Callable[..., LocalServer]]:
    """Starts servers on demand (`start("127.0.0.2")`) and stops them all after the test."""
    servers: list[LocalServer] = []

    def start(host: str = "127.0.0.1") -> LocalServer:
        server = LocalServer(host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def http_server(http_server_factory: Callable[..., LocalServer]) -> LocalServer:
    """One server on 127.0.0.1."""
    return http_server_factory()
