"""yt-dlp as a library: metadata first, refusing what we cannot analyse with a clear reason,
then the audio alone into a given folder, with every connection under the address guard and
every response body read against the request's budget."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings

from ..budget import MeteredStream, RequestBudget
from ..errors import (
    DownloadFailed,
    LiveStream,
    PlaylistOnly,
    ScriabinError,
    TooLarge,
    TooLong,
    UnsupportedLink,
)
from ..netguard import guarded
from .cookies import copy_cookies
from .explain import GENERIC_FAILURE, explain_download_error
from .redact import Redactor, YtDlpLog

log = logging.getLogger(__name__)

RETRIES = 2
# Audio alone, preferring plain HTTP(S) files over HLS; both run on yt-dlp's own downloaders in
# this thread. Other protocols (RTMP, websockets, site-specific live downloaders) would need
# external programs or helper threads, out of reach of the connection guard.
AUDIO_FORMAT = (
    "bestaudio[protocol^=http]/bestaudio[protocol^=m3u8]/best[protocol^=http]/best[protocol^=m3u8]"
)
GUARDED_PROTOCOLS = frozenset(
    {"http", "https", "m3u8", "m3u8_native", "http_dash_segments", "http_dash_segments_generator"}
)
# yt-dlp's HTTP stacks that resolve names with socket.getaddrinfo in the calling thread, and so
# stay under the guard. curl_cffi, if installed, resolves inside libcurl and would escape it.
GUARDED_REQUEST_HANDLERS = frozenset({"Urllib", "Requests", "Websockets"})
PLAYLIST_TYPES = frozenset({"playlist", "multi_video"})
LIVE_STATUSES = frozenset({"is_live", "is_upcoming"})
OUTPUT_NAME = "audio.%(ext)s"


@dataclass(frozen=True)
class FetchedAudio:
    """A downloaded audio file, valid only inside the `fetch_audio` block that made it."""

    path: Path
    title: str | None
    duration_s: float | None
    url: str | None  # the media's web page, to link back to


class _SizeLimitReached(Exception):
    """Raised from a progress hook to stop a download that has grown past the limit."""


@functools.cache
def _deno_path() -> str | None:
    try:
        import deno

        return deno.find_deno_bin()
    except (ImportError, FileNotFoundError):
        return None


@functools.cache
def youtube_dl_class() -> type:
    from yt_dlp import YoutubeDL
    from yt_dlp.networking.common import _REQUEST_HANDLERS, _RH_PREFERENCES

    class GuardedYoutubeDL(YoutubeDL):
        """YoutubeDL limited to the HTTP stacks whose connections the guard sees, whose every
        response body (pages, manifests, media) is read against the request's budget."""

        budget: RequestBudget | None = None

        def urlopen(self, req: Any) -> Any:
            budget = self.budget
            if budget is not None:
                budget.check()
            response = super().urlopen(req)
            if budget is not None:
                page = _is_page(response.headers.get("Content-Type", ""))
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and budget.read_bytes + int(declared) > budget.max_bytes:
                    response.close()
                    raise TooLarge(budget.page_too_large if page else budget.too_large)
                response.fp = MeteredStream(response.fp, budget, page)
            return response

        @functools.cached_property
        def _request_director(self) -> Any:
            handlers = [
                handler
                for key, handler in _REQUEST_HANDLERS.items()
                if key in GUARDED_REQUEST_HANDLERS
            ]
            return self.build_request_director(handlers, _RH_PREFERENCES)

    return GuardedYoutubeDL


def _is_page(content_type: str) -> bool:
    """Whether a response is a web page, feed or manifest rather than media."""
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith("text/") or kind.endswith(("json", "xml", "mpegurl", "dash+xml"))


def _ydl_params(
    settings: Settings,
    workdir: Path,
    logger: YtDlpLog,
    cookie_copy: Path | None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    # A single read never waits longer than the network timeout, nor the whole request's.
    limit = settings.max_download_bytes

    def stop_when_too_large(status: dict[str, Any]) -> None:
        seen = max(status.get("downloaded_bytes") or 0, status.get("total_bytes") or 0)
        if seen > limit:
            raise _SizeLimitReached

    params: dict[str, Any] = {
        "format": AUDIO_FORMAT,
        "noplaylist": True,
        # Playlist entries are listed, not resolved: a playlist is refused anyway, and a big
        # one would otherwise cost a request per entry. Two entries tell "one" from "many".
        "extract_flat": "in_playlist",
        "playlist_items": "1:2",
        "paths": {"home": str(workdir), "temp": str(workdir)},
        "outtmpl": {"default": OUTPUT_NAME},
        "max_filesize": limit,
        "progress_hooks": [stop_when_too_large] + ([progress] if progress else []),
        "postprocessors": [],
        "fixup": "never",
        # yt-dlp's own downloaders run in this thread, under the guard; external programs
        # (ffmpeg, aria2c, curl) would open connections the guard cannot see.
        "external_downloader": {"default": "native"},
        "hls_prefer_native": True,
        "concurrent_fragment_downloads": 1,
        "ffmpeg_location": str(workdir / "no-ffmpeg"),
        # A proxy would connect on our behalf, out of the guard's sight.
        "proxy": "",
        "cachedir": False,
        "writeinfojson": False,
        "writethumbnail": False,
        "writesubtitles": False,
        "writeautomaticsub": False,
        "writedescription": False,
        "updatetime": False,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "logger": logger,
        "socket_timeout": min(settings.network_timeout_s, settings.request_timeout_s),
        "retries": RETRIES,
        "fragment_retries": RETRIES,
        "extractor_retries": RETRIES,
        "file_access_retries": RETRIES,
    }
    deno_path = _deno_path()
    if deno_path is not None:
        params["js_runtimes"] = {"deno": {"path": deno_path}}
    if cookie_copy is not None:
        params["cookiefile"] = str(cookie_copy)
    return params


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return "1 minute" if minutes == 1 else f"{minutes:.3g} minutes"


def _single_video(ydl: Any, info: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """The one video behind a link, or PlaylistOnly when the link is a list of several."""
    if info.get("_type", "video") not in PLAYLIST_TYPES:
        return info
    entries = [entry for entry in info.get("entries") or [] if entry]
    if len(entries) != 1 or depth > 0:
        if not entries:
            raise UnsupportedLink("That playlist is empty, or I couldn't read its contents.")
        raise PlaylistOnly("That link is a playlist; send me a link to a single song or video.")
    # A list of one is that one: resolve the entry the flat extraction left as a reference.
    return _single_video(ydl, ydl.process_ie_result(entries[0], download=False), depth + 1)


def _refuse_unsuitable(info: dict[str, Any], settings: Settings) -> None:
    if info.get("is_live") or info.get("live_status") in LIVE_STATUSES:
        raise LiveStream(
            "That's a live stream or a premiere that hasn't started; send me a recording instead."
        )
    duration = info.get("duration")
    if duration and duration > settings.max_duration_s:
        raise TooLong(
            f"That's {_minutes(duration)} long; I only analyse media up to "
            f"{_minutes(settings.max_duration_s)}."
        )
    size = info.get("filesize") or info.get("filesize_approx")
    if size and size > settings.max_download_bytes:
        raise TooLarge(too_large_text(settings))
    protocols = str(info.get("protocol") or "").split("+")
    if info.get("requested_formats") or not set(protocols) <= GUARDED_PROTOCOLS:
        log.info("refused format protocol %s", info.get("protocol"))
        raise UnsupportedLink("I can't download the kind of stream that link leads to.")


def too_large_text(settings: Settings) -> str:
    return (
        f"That file is too big for me to download (the limit is {settings.max_download_mb:g} MB)."
    )


def _downloaded_file(info: dict[str, Any], workdir: Path) -> Path | None:
    for download in info.get("requested_downloads") or ():
        path = download.get("filepath")
        if path and Path(path).is_file():
            return Path(path)
    # The name is ours (OUTPUT_NAME), so a look in the folder finds the file if yt-dlp did
    # not report it; .part files are unfinished downloads, not results.
    found = sorted(p for p in workdir.glob("audio.*") if p.suffix != ".part")
    return found[0] if found else None


def _own_error(error: BaseException) -> ScriabinError | None:
    """Our own error (the budget's TooLarge or TooSlow) that yt-dlp wrapped in its own."""
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ScriabinError):
            return current
        exc_info = getattr(current, "exc_info", None)
        pending += [
            getattr(current, "cause", None),
            current.__cause__,
            current.__context__,
            exc_info[1] if exc_info else None,
        ]
    return None


def download(
    url: str,
    settings: Settings,
    workdir: Path,
    budget: RequestBudget,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FetchedAudio:
    from yt_dlp.cookies import CookieLoadError
    from yt_dlp.utils import YoutubeDLError

    cookie_copy, secrets = copy_cookies(settings, workdir)
    redact = Redactor(secrets)
    ydl_log = YtDlpLog(redact, log)
    params = _ydl_params(settings, workdir, ydl_log, cookie_copy, progress)
    with guarded(settings):
        try:
            with youtube_dl_class()(params) as ydl:
                ydl.budget = budget
                info = ydl.extract_info(url, download=False)
                if not info:
                    raise UnsupportedLink("I couldn't find any audio or video behind that link.")
                info = _single_video(ydl, info)
                _refuse_unsuitable(info, settings)
                info = ydl.process_ie_result(info, download=True)
        except _SizeLimitReached:
            raise TooLarge(too_large_text(settings)) from None
        except CookieLoadError:
            # yt-dlp already logged the reason (redacted) through our logger.
            log.warning("the configured cookies file could not be loaded by yt-dlp")
            raise DownloadFailed(GENERIC_FAILURE) from None
        except YoutubeDLError as error:
            own = _own_error(error)
            if own is not None:  # the budget ran out while yt-dlp was reading
                log.info("download of %s stopped: %s", redact(url), own.code)
                raise own from None
            # DownloadError carries the exception behind it; the others are their own cause.
            exc_info = getattr(error, "exc_info", None)
            cause = exc_info[1] if exc_info and exc_info[1] is not None else error
            log.info("download of %s failed: %s", redact(url), redact(str(error)))
            raise _with_limits(explain_download_error(str(error), cause), settings) from None
    budget.check()
    path = _downloaded_file(info, workdir)
    if path is None:
        # yt-dlp gives up on some problems (max-filesize among them) without raising.
        explained = explain_download_error(" ".join(ydl_log.recent))
        log.info("download of %s produced no file: %s", redact(url), explained)
        raise _with_limits(explained, settings)
    if path.stat().st_size > settings.max_download_bytes:
        raise TooLarge(too_large_text(settings))
    duration = info.get("duration")
    # What the page says it is (its extractor and id) is not an identity: any page may claim
    # any id. The song is known by the link it was asked for (classifier.sources).
    return FetchedAudio(
        path=path,
        title=info.get("title"),
        duration_s=float(duration) if duration else None,
        url=_link_back(info, url),
    )


def _with_limits(error: ScriabinError, settings: Settings) -> ScriabinError:
    """The explanation, with the configured limit named where the user would want it."""
    return TooLarge(too_large_text(settings)) if isinstance(error, TooLarge) else error


def _link_back(info: dict[str, Any], url: str) -> str:
    from yt_dlp.utils import unsmuggle_url

    # yt-dlp smuggles its own data into URL fragments (RSS entries, embeds); not for users.
    page, _data = unsmuggle_url(info.get("webpage_url") or url)
    return page
