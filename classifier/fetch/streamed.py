"""A download read while it arrives: yt-dlp runs in its own thread (under the guard, as in a
whole download) and the file it writes can be read in order while it grows."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from config import Settings

from ..budget import RequestBudget
from .ytdlp import FetchedAudio, download


class StreamedDownload:
    """One download running in its own thread (yt-dlp under the guard, as in `fetch_audio`),
    with the file it writes readable while it grows."""

    def __init__(self, url: str, settings: Settings, workdir: Path, budget: RequestBudget):
        self.budget = budget
        self._url, self._settings, self._workdir = url, settings, workdir
        self._arrived = threading.Condition()
        self._part: Path | None = None  # the file being written, once yt-dlp has named it
        self._finished = False
        self._fetched: FetchedAudio | None = None
        self._error: BaseException | None = None
        self._started = time.perf_counter()
        self.elapsed_s = 0.0  # from the start to the last byte
        self._thread = threading.Thread(target=self._run, name="scriabin-download", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            fetched = download(self._url, self._settings, self._workdir, self.budget, self._hook)
        except BaseException as error:  # handed to the reading thread by result()
            fetched, failure = None, error
        else:
            failure = None
        with self._arrived:
            self._fetched, self._error = fetched, failure
            self._finished = True
            self.elapsed_s = time.perf_counter() - self._started
            self._arrived.notify_all()

    def _hook(self, status: dict[str, Any]) -> None:
        name = status.get("tmpfilename") or status.get("filename")
        with self._arrived:
            if self._part is None and name:
                self._part = Path(name)
            self._arrived.notify_all()

    @property
    def finished(self) -> bool:
        with self._arrived:
            return self._finished

    def reader(self) -> ArrivingFile:
        """The download as a file object that reads in order, waiting for bytes to arrive;
        it ends where the download ends (however it ends: `result` says how)."""
        return ArrivingFile(self)

    def result(self) -> FetchedAudio:
        """Wait for the download to end: the whole file, or the download's own error."""
        self.join()
        if self._error is not None:
            raise self._error
        assert self._fetched is not None
        return self._fetched

    def failure(self) -> BaseException | None:
        """The download's error, if it has ended with one."""
        with self._arrived:
            return self._error

    def join(self) -> None:
        self._thread.join()

    def open_file(self) -> io.BufferedReader | None:
        with self._arrived:
            part, finished, fetched = self._part, self._finished, self._fetched
        # Once yt-dlp renames its .part file, the finished file has the name.
        for path in (part, fetched.path if finished and fetched else None):
            if path is not None:
                try:
                    return path.open("rb")
                except FileNotFoundError:
                    continue
        return None

    def wait_for_more(self, timeout_s: float) -> None:
        with self._arrived:
            if not self._finished:
                self._arrived.wait(timeout_s)


class ArrivingFile(io.RawIOBase):
    """A download read while it arrives: reads wait (checking the request's budget) until
    bytes come or the download ends. It cannot seek, so a decoder reads it in order."""

    WAIT_S = 0.2  # how long one wait for more bytes lasts before the budget is checked again

    def __init__(self, download: StreamedDownload) -> None:
        self._download = download
        self._file: io.BufferedReader | None = None
        self.waits = 0  # how many times a read has had to wait: the reader is keeping up

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        while True:
            # Whether it had ended is read before trying: no byte written before that is missed.
            ended = self._download.finished
            if self._file is None:
                self._file = self._download.open_file()
            count = self._file.readinto(buffer) if self._file is not None else 0
            if count or ended:
                return count or 0
            self.waits += 1
            self._download.budget.check()
            self._download.wait_for_more(self.WAIT_S)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()
