"""What one request may spend: bytes read from the network (pages, manifests and media alike),
and time (one deadline for everything: metadata, downloads, decoding). A request can also be
called off from another thread (its deadline passed, or the process is shutting down): what it
is reading is closed at once and its next step raises."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any

from .errors import ScriabinError, TooLarge, TooSlow

log = logging.getLogger(__name__)

# Reads of a whole response are made in pieces of this size, so that a page that never ends is
# stopped at the budget instead of being read into memory first.
READ_CHUNK = 64 * 1024
TOO_SLOW = "That site is too slow: I gave up waiting for it. Try again later or another link."


class RequestBudget:
    """The bytes and time left to one request, shared by every stage that reads or decodes."""

    def __init__(
        self, max_bytes: int, timeout_s: float, too_large: str, page_too_large: str | None = None
    ) -> None:
        self.max_bytes = max_bytes
        self.read_bytes = 0
        self.deadline = time.monotonic() + timeout_s
        self.too_large = too_large  # said when media runs over
        self.page_too_large = page_too_large or too_large  # when a web page or manifest does
        self._stop: ScriabinError | None = None
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        # Runs while responses are open: at the deadline it shuts them, since a server that
        # trickles bytes keeps a single read(n) waiting far longer than any socket timeout.
        self._alarm: threading.Timer | None = None

    @property
    def left(self) -> int:
        """Bytes that may still be read."""
        return max(0, self.max_bytes - self.read_bytes)

    @property
    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise if the request has been called off or its deadline has passed."""
        if self._stop is not None:
            raise self._stop
        if time.monotonic() > self.deadline:
            raise TooSlow(TOO_SLOW)

    def charge(self, count: int, page: bool = False) -> None:
        """Count `count` bytes read from the network (of a web page or manifest if `page`);
        TooLarge past the budget, and from then on at every check (so no retry opens another
        connection)."""
        text = self.page_too_large if page else self.too_large
        with self._lock:
            self.read_bytes += count
            over = self.read_bytes > self.max_bytes
            if over and self._stop is None:
                self._stop = TooLarge(text)
        if over:
            raise TooLarge(text)

    def stop(self, reason: ScriabinError) -> None:
        """Call the request off (from any thread): every open response is shut, and the next
        check raises `reason`."""
        with self._lock:
            if self._stop is None:
                self._stop = reason
            responses = list(self._open)
        for response in responses:
            _shut(response)

    def opened(self, response: Any) -> None:
        with self._lock:
            self._open.add(response)
            if self._alarm is None:
                self._alarm = threading.Timer(max(0.0, self.remaining_s), self._expire)
                self._alarm.daemon = True
                self._alarm.start()
        if self._stop is not None:
            _shut(response)

    def closed(self, response: Any) -> None:
        with self._lock:
            self._open.discard(response)

    def release(self) -> None:
        """The network part is over: no alarm is needed any more."""
        with self._lock:
            alarm, self._alarm = self._alarm, None
        if alarm is not None:
            alarm.cancel()

    def _expire(self) -> None:
        log.debug("request deadline passed with %d response(s) open", len(self._open))
        self.stop(TooSlow(TOO_SLOW))


class MeteredStream:
    """A response body that charges every byte it reads to a budget and checks the deadline
    before each read; stands in for the file object inside an HTTP response."""

    def __init__(self, raw: Any, budget: RequestBudget, page: bool = False) -> None:
        self._raw = raw
        self._budget = budget
        self._page = page
        budget.opened(raw)

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        if amt is None or amt < 0:
            pieces = []
            while piece := self._read_some(READ_CHUNK, *args, **kwargs):
                pieces.append(piece)
            return b"".join(pieces)
        return self._read_some(amt, *args, **kwargs)

    def _read_some(self, amt: int, *args: Any, **kwargs: Any) -> bytes:
        self._budget.check()
        # Never more than one byte past the budget, however large a block the reader asks for.
        amt = max(1, min(amt, self._budget.left + 1))
        data = self._raw.read(amt, *args, **kwargs)
        self._budget.charge(len(data), self._page)
        return data

    def close(self) -> None:
        self._budget.closed(self._raw)
        self._raw.close()

    @property
    def closed(self) -> bool:
        return bool(getattr(self._raw, "closed", False))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _shut(response: Any) -> None:
    """Wake a thread blocked reading `response`: shut its socket down (closing alone does not
    interrupt a blocking read on Linux), then close it."""
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def _socket_of(response: Any, depth: int = 0) -> socket.socket | None:
    """The socket under an HTTP response (urllib3 -> http.client -> buffered reader -> SocketIO),
    found by the attributes those classes keep it under; None if it is not there."""
    if isinstance(response, socket.socket):
        return response
    if depth > 6 or response is None:
        return None
    for name in ("_fp", "fp", "raw", "_sock", "sock", "_connection"):
        inner = getattr(response, name, None)
        if inner is not None and inner is not response:
            found = _socket_of(inner, depth + 1)
            if found is not None:
                return found
    return None
