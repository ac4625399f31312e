"""First pipeline stage: the audio behind a link, fetched by yt-dlp (`ytdlp`) under the address
guard and the request's budget, into a temporary folder that is always removed (`folders`); whole
(`fetch_audio`), or read while it arrives (`stream_audio`, `streamed`). Why a download failed is
told in a sentence for users (`explain`); secrets stay out of the logs (`redact`, `cookies`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config import Settings

from ..budget import RequestBudget
from ..errors import DownloadFailed, ScriabinError
from ..netguard import check_url
from .explain import GENERIC_FAILURE, explain_download_error
from .folders import new_folder, remove_download_folders, remove_folder
from .streamed import ArrivingFile, StreamedDownload
from .ytdlp import FetchedAudio, download, too_large_text

__all__ = [
    "ArrivingFile",
    "FetchedAudio",
    "StreamedDownload",
    "download_budget",
    "explain_download_error",
    "fetch_audio",
    "remove_download_folders",
    "stream_audio",
]


def download_budget(settings: Settings) -> RequestBudget:
    """A fresh budget for one request: the download limit and the request deadline."""
    return RequestBudget(
        settings.max_download_bytes,
        settings.request_timeout_s,
        too_large_text(settings),
        f"That page is larger than {settings.max_download_mb:g} MB, the most I read for one "
        "song; send me a link to the song itself.",
    )


@contextmanager
def fetch_audio(
    url: str, settings: Settings, budget: RequestBudget | None = None
) -> Iterator[FetchedAudio]:
    """Download the audio behind `url` for the duration of the block; the file and its
    folder are removed when the block ends, however it ends. Every byte read (pages and
    media) counts against `budget`, which also carries the request's deadline."""
    with _download_folder(url, settings, budget) as (url, budget, workdir):
        yield download(url, settings, workdir, budget)


@contextmanager
def stream_audio(
    url: str, settings: Settings, budget: RequestBudget | None = None
) -> Iterator[StreamedDownload]:
    """Start downloading the audio behind `url` in another thread, for the duration of the
    block, and give what arrives to be read while it arrives (`StreamedDownload.reader`). The
    same guard and budget apply as in `fetch_audio`. A block left by an error stops the
    download; the file and its folder are removed when the block ends, however it ends."""
    with _download_folder(url, settings, budget) as (url, budget, workdir):
        streaming = StreamedDownload(url, settings, workdir, budget)
        try:
            yield streaming
        except BaseException as error:
            if isinstance(error, ScriabinError):
                reason: ScriabinError = error
            else:
                reason = DownloadFailed(GENERIC_FAILURE)
            budget.stop(reason)  # shuts what the download is reading, so its thread ends now
            raise
        finally:
            streaming.join()


@contextmanager
def _download_folder(
    url: str, settings: Settings, budget: RequestBudget | None
) -> Iterator[tuple[str, RequestBudget, Path]]:
    """A checked link, its budget and a registered temporary folder, for one download; the
    budget's alarm is released and the folder removed when the block ends."""
    url = url.strip() if isinstance(url, str) else url
    budget = budget or download_budget(settings)
    check_url(url, settings)
    workdir = new_folder()
    try:
        yield url, budget, workdir
    finally:
        budget.release()
        remove_folder(workdir)
