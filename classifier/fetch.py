"""First pipeline stage: yt-dlp as a library reads a link's metadata, refuses what we cannot
analyse with a clear reason, then downloads the audio alone into a temporary folder."""

from __future__ import annotations

import functools
import io
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings

from .budget import MeteredStream, RequestBudget
from .errors import (
    DownloadFailed,
    LiveStream,
    MediaUnavailable,
    NotAudio,
    PlaylistOnly,
    ScriabinError,
    TooLarge,
    TooLong,
    UnsupportedLink,
)
from .netguard import check_url, guarded

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
COOKIES_COPY_NAME = "cookies.txt"
NETSCAPE_HEADER = "# Netscape HTTP Cookie File"
HTTPONLY_PREFIX = "#HttpOnly_"
COOKIE_FIELDS = 7
TEMP_PREFIX = "scriabin-"

# Every download folder that exists right now, so a shutdown can remove them all even while a
# worker is still inside one.
_live_folders: set[Path] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class FetchedAudio:
    """A downloaded audio file, valid only inside the `fetch_audio` block that made it."""

    path: Path
    title: str | None
    duration_s: float | None
    url: str | None  # the media's web page, to link back to


# --- what users are told when yt-dlp fails ---------------------------------------------------

_GENERIC_FAILURE = "Sorry, I couldn't download that link."

# First match wins, so the specific reasons come before the general ones: YouTube's private,
# age and bot messages all also say "sign in", and its geo message also says "unavailable".
_ERROR_RULES: tuple[tuple[re.Pattern[str], type[ScriabinError], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), error_type, text)
    for pattern, error_type, text in (
        (
            r"larger than max-filesize|file is too large|exceeds the size limit",
            TooLarge,
            "That file is too big for me to download.",
        ),
        (
            r"not a bot|captcha|unusual traffic",
            MediaUnavailable,
            "YouTube is asking for a human check right now. Try again later "
            "(or the bot's operator can set up cookies).",
        ),
        (
            r"live event will begin|premieres? in |premiere will begin|not currently live",
            LiveStream,
            "That's a live stream or a premiere that hasn't started; send me a recording instead.",
        ),
        (
            r"confirm your age|age[- ]restricted|inappropriate for some users",
            MediaUnavailable,
            "That video is age-restricted, so I can't get it without signing in.",
        ),
        (
            r"members[- ]only|channel's members|join this channel",
            MediaUnavailable,
            "That video is for channel members only.",
        ),
        (
            r"private video|video is private|this video has been made private",
            MediaUnavailable,
            "That video is private.",
        ),
        (
            r"not available in your country|not made this video available in your country"
            r"|from your location|geo[- ]?restrict|not available in your region",
            MediaUnavailable,
            "That media isn't available in the country I run from.",
        ),
        (
            r"content isn't available, try again later|rate[- ]limited",
            DownloadFailed,
            "The site is limiting how much I can download right now; try again in a while.",
        ),
        (
            r"video unavailable|has been removed|account associated with this video has been"
            r" terminated|account .{0,40}terminated|no longer available|video is unavailable"
            r"|this video is not available|does not exist",
            MediaUnavailable,
            "That video is unavailable; it may have been removed.",
        ),
        (
            r"sign in|log ?in required|login details are needed|only available for registered"
            r" users|requires authentication|needs? (?:an )?account",
            MediaUnavailable,
            "That media needs a signed-in account, which I don't have.",
        ),
        (
            r"drm protected",
            UnsupportedLink,
            "That media is copy-protected (DRM), so I can't analyse it.",
        ),
        (
            r"unsupported url|no video formats found|requested format is not available"
            r"|no suitable extractor|is not a valid url|no media found|no audio",
            UnsupportedLink,
            "I couldn't find any audio or video behind that link.",
        ),
        (
            r"http error 40[14]|http error 410",
            DownloadFailed,
            "The site says that page doesn't exist (or is gone). Check the link.",
        ),
        (
            r"http error 403",
            DownloadFailed,
            "The site refused to let me download that.",
        ),
        (
            r"http error 429|too many requests",
            DownloadFailed,
            "The site is limiting how much I can download right now; try again in a while.",
        ),
        (
            r"http error 5\d\d",
            DownloadFailed,
            "The site had a server error; try again later.",
        ),
        (
            r"timed out|timeout",
            DownloadFailed,
            "The site took too long to answer; try again later.",
        ),
        (
            # The link's own name was looked up before yt-dlp began (netguard.check_url): this
            # is another server it leads to, or the lookup failing on our side.
            r"name or service not known|nodename nor servname|getaddrinfo failed"
            r"|name resolution|no address associated",
            DownloadFailed,
            "I couldn't look up the address of a server that link needs; try again later.",
        ),
        (
            r"certificate verify failed|\bssl\b|sslerror",
            DownloadFailed,
            "I couldn't make a secure connection to that site.",
        ),
        (
            # yt-dlp's words for a response whose body ended before its first byte.
            r"did not get any data blocks",
            NotAudio,
            "That link leads to an empty file: there's no audio in it.",
        ),
        (
            r"connection refused",
            DownloadFailed,
            "Nothing answered at that site's address: it may be down. Try again later.",
        ),
        (
            r"network is unreachable|no route to host|host is unreachable",
            DownloadFailed,
            "I couldn't reach that site from here; try again later.",
        ),
        (
            r"connection reset|remote end closed|connection aborted|content too short"
            r"|incomplete read",
            DownloadFailed,
            "The connection to the site broke off; try again later.",
        ),
    )
)


def explain_download_error(message: str, cause: BaseException | None = None) -> ScriabinError:
    """Turn a yt-dlp error (its message, and the exception behind it when known) into one of
    our errors, whose text can be shown in chat as is."""
    # Imported here so importing the classifier package stays cheap.
    from yt_dlp.utils import GeoRestrictedError, UnsupportedError, UserNotLive

    for error in _exception_chain(cause):
        if isinstance(error, GeoRestrictedError):
            return MediaUnavailable("That media isn't available in the country I run from.")
        if isinstance(error, UserNotLive):
            return LiveStream("That channel isn't live right now; send me a recording instead.")
        if isinstance(error, UnsupportedError):
            return UnsupportedLink("I couldn't find any audio or video behind that link.")
    # YouTube writes "you’re" with a typographic apostrophe.
    text = message.replace("\u2019", "'")
    for pattern, error_type, friendly in _ERROR_RULES:
        if pattern.search(text):
            return error_type(friendly)
    return DownloadFailed(_GENERIC_FAILURE)


def _exception_chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__


# --- keeping secrets out of the logs ---------------------------------------------------------

_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[\w.-]*(?:token|sig|key|auth|session|secret|pass|pwd|cookie|cred|policy"
    r"|jwt|code|sid|hash)[\w.-]*)=)(?P<value>[^&;#\s\"'<>]+)",
    re.IGNORECASE,
)
_MIN_SECRET_LENGTH = 6


class _Redactor:
    """Removes known secrets (cookie values, cookie file lines and paths) and token-like query
    values from text before it reaches a log."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a whole cookie line is replaced before the value inside it.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _SECRET_QUERY.sub(r"\g<key>[redacted]", text)


class _YtDlpLog:
    """yt-dlp's `logger` parameter: every message goes to our log at debug level, redacted,
    and the last few are kept to explain a download that ended without a file or an error."""

    def __init__(self, redact: _Redactor) -> None:
        self._redact = redact
        self._logger = logging.getLogger(__name__)
        self.recent: deque[str] = deque(maxlen=20)

    def _emit(self, message: str) -> None:
        text = self._redact(str(message))
        self.recent.append(text)
        self._logger.debug("yt-dlp: %s", text)

    def debug(self, message: str) -> None:
        self._emit(message)

    def info(self, message: str) -> None:
        self._emit(message)

    def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._emit(message)

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._emit(message)


# --- yt-dlp ------------------------------------------------------------------------------------


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
def _youtube_dl_class() -> type:
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
    logger: _YtDlpLog,
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
        raise TooLarge(_too_large_text(settings))
    protocols = str(info.get("protocol") or "").split("+")
    if info.get("requested_formats") or not set(protocols) <= GUARDED_PROTOCOLS:
        log.info("refused format protocol %s", info.get("protocol"))
        raise UnsupportedLink("I can't download the kind of stream that link leads to.")


def _too_large_text(settings: Settings) -> str:
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


def _cookie_line_loads(line: str) -> bool:
    """Whether yt-dlp accepts this Netscape cookies line (its own test, in cookies.py)."""
    fields = line.removeprefix(HTTPONLY_PREFIX).split("\t")
    if len(fields) != COOKIE_FIELDS:
        return False
    expires = fields[4]
    return not expires or re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", expires) is not None


def _copy_cookies(settings: Settings, workdir: Path) -> tuple[Path | None, list[str]]:
    """A private copy of the cookies file, since yt-dlp writes cookies back to the file it
    was given; returns the copy and the strings that must never reach a log."""
    if settings.cookies_file is None:
        return None, []
    source = Path(settings.cookies_file)
    copy = workdir / COOKIES_COPY_NAME
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except OSError:
        # Neither path nor content is logged: the file's location is part of the secret.
        log.warning("the configured cookies file could not be read; fetching without cookies")
        return None, []
    secrets = [str(source), str(source.resolve()), str(copy)]
    kept = [NETSCAPE_HEADER]
    skipped = 0
    for line in text.splitlines():
        if not line.strip() or (line.startswith("#") and not line.startswith(HTTPONLY_PREFIX)):
            continue
        # The whole line, and its last field: the value, or the best guess at it.
        secrets += [line, line.split("\t")[-1].strip()]
        # yt-dlp prints the lines it cannot load, value and all, straight to stderr, past
        # any logger; so those lines never reach it.
        if _cookie_line_loads(line):
            kept.append(line)
        else:
            skipped += 1
    if skipped:
        log.warning("skipped %d malformed line(s) of the cookies file", skipped)
    copy.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return copy, secrets


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


def _download(
    url: str,
    settings: Settings,
    workdir: Path,
    budget: RequestBudget,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FetchedAudio:
    from yt_dlp.cookies import CookieLoadError
    from yt_dlp.utils import YoutubeDLError

    cookie_copy, secrets = _copy_cookies(settings, workdir)
    redact = _Redactor(secrets)
    ydl_log = _YtDlpLog(redact)
    params = _ydl_params(settings, workdir, ydl_log, cookie_copy, progress)
    with guarded(settings):
        try:
            with _youtube_dl_class()(params) as ydl:
                ydl.budget = budget
                info = ydl.extract_info(url, download=False)
                if not info:
                    raise UnsupportedLink("I couldn't find any audio or video behind that link.")
                info = _single_video(ydl, info)
                _refuse_unsuitable(info, settings)
                info = ydl.process_ie_result(info, download=True)
        except _SizeLimitReached:
            raise TooLarge(_too_large_text(settings)) from None
        except CookieLoadError:
            # yt-dlp already logged the reason (redacted) through our logger.
            log.warning("the configured cookies file could not be loaded by yt-dlp")
            raise DownloadFailed(_GENERIC_FAILURE) from None
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
        raise TooLarge(_too_large_text(settings))
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
    return TooLarge(_too_large_text(settings)) if isinstance(error, TooLarge) else error


def _link_back(info: dict[str, Any], url: str) -> str:
    from yt_dlp.utils import unsmuggle_url

    # yt-dlp smuggles its own data into URL fragments (RSS entries, embeds); not for users.
    page, _data = unsmuggle_url(info.get("webpage_url") or url)
    return page


def download_budget(settings: Settings) -> RequestBudget:
    """A fresh budget for one request: the download limit and the request deadline."""
    return RequestBudget(
        settings.max_download_bytes,
        settings.request_timeout_s,
        _too_large_text(settings),
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
        yield _download(url, settings, workdir, budget)


@contextmanager
def stream_audio(
    url: str, settings: Settings, budget: RequestBudget | None = None
) -> Iterator[StreamedDownload]:
    """Start downloading the audio behind `url` in another thread, for the duration of the
    block, and give what arrives to be read while it arrives (`StreamedDownload.reader`). The
    same guard and budget apply as in `fetch_audio`. A block left by an error stops the
    download; the file and its folder are removed when the block ends, however it ends."""
    with _download_folder(url, settings, budget) as (url, budget, workdir):
        download = StreamedDownload(url, settings, workdir, budget)
        try:
            yield download
        except BaseException as error:
            if isinstance(error, ScriabinError):
                reason: ScriabinError = error
            else:
                reason = DownloadFailed(_GENERIC_FAILURE)
            budget.stop(reason)  # shuts what the download is reading, so its thread ends now
            raise
        finally:
            download.join()


@contextmanager
def _download_folder(
    url: str, settings: Settings, budget: RequestBudget | None
) -> Iterator[tuple[str, RequestBudget, Path]]:
    """A checked link, its budget and a registered temporary folder, for one download; the
    budget's alarm is released and the folder removed when the block ends."""
    url = url.strip() if isinstance(url, str) else url
    budget = budget or download_budget(settings)
    check_url(url, settings)
    workdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    with _live_lock:
        _live_folders.add(workdir)
    try:
        yield url, budget, workdir
    finally:
        budget.release()
        _remove(workdir)


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
            fetched = _download(self._url, self._settings, self._workdir, self.budget, self._hook)
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


def _remove(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    with _live_lock:
        _live_folders.discard(workdir)
    if workdir.exists():
        log.warning("could not remove the temporary folder of a download")


def remove_download_folders() -> int:
    """Remove every download folder still in use (at shutdown); returns how many there were."""
    with _live_lock:
        folders = list(_live_folders)
    for folder in folders:
        _remove(folder)
    return len(folders)
