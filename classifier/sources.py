"""A song's identity. A link, a local file or an upload is parsed once into a frozen `Source`
whose media id names the same song in every process, cache and feedback row, and never two
different songs; what one requester supplied (their file's name, their link) stays theirs.

Media ids: `youtube:<id>` where yt-dlp fetches the media by that id alone, whatever link led to
it; for every other link the whole normalised URL (`url:https://host/path?query`), which names
the host the media comes from; for files and uploads a SHA-256 of their bytes.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .errors import InvalidSource
from .results import Classification, Timings, Upload

SourceKind = Literal["link", "file", "upload"]
# What a front end may hand over: a link or a path as text, a path, or a chat upload's bytes.
SourceInput = str | Path | Upload

# Extractors whose ids are global: the media is fetched from the extractor's own site by the
# id alone (an Invidious or youtu.be link still downloads from YouTube), so `<extractor>:<id>`
# names one song wherever the link was posted. Any other extractor's id may only be unique on
# its host (PeerTube, any self-hosted or generic site) or leave out part of the link that
# matters (an unlisted video's secret), so those links are known by their whole URL.
GLOBAL_ID_EXTRACTORS = frozenset({"youtube"})
NOT_A_LINK = "That doesn't look like a link I can open."

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_WINDOWS_DRIVE = re.compile(r"^[a-zA-Z]:[\\/]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"}
_YOUTUBE_PATH_ID = re.compile(r"^/(?:shorts|live|embed|v)/([\w-]{6,})")


@dataclass(frozen=True)
class Source:
    """One song as a request names it. `media_id` is what caches, joined jobs and feedback key
    on; `given` (what the request said) and `name` (a file's or upload's own name) belong to
    this request alone."""

    kind: SourceKind
    media_id: str
    url: str | None = None  # link: the normalised URL that is fetched
    path: Path | None = None  # file: where it is on this machine
    data: bytes | None = field(default=None, repr=False, compare=False)  # upload: the bytes
    name: str | None = field(default=None, compare=False)  # file or upload: its own name
    given: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.given or self.url or self.name or self.media_id

    @property
    def own_title(self) -> str | None:
        """The title this request itself supplies (a file's name); a link's comes from its
        page, which is the same for everyone asking for that media id."""
        return None if self.kind == "link" else self.name

    def as_job(self) -> dict[str, Any]:
        """The JSON a worker elsewhere needs to fetch this song (an upload's bytes travel
        apart, under its SHA-256); `from_job` reads it back without parsing anything again."""
        if self.kind == "link":
            return {"kind": "link", "media_id": self.media_id, "url": self.url, "given": self.given}
        if self.kind == "upload":
            return {"kind": "upload", "media_id": self.media_id, "name": self.name}
        raise ValueError("a local file goes to workers as an upload (as_upload)")

    @classmethod
    def from_job(cls, job: Mapping[str, Any], data: bytes | None = None) -> Source:
        if job["kind"] == "link":
            return cls("link", job["media_id"], url=job["url"], given=job.get("given", ""))
        if data is None or content_id(data) != job["media_id"]:
            raise ValueError("an upload's bytes must match its media id")
        return cls("upload", job["media_id"], data=data, name=job["name"], given=job["name"])


def parse_source(source: SourceInput | Source) -> Source:
    """The one parse of what a request names: InvalidSource (a sentence for users) when it
    cannot be a song. A file is read here, to hash it (the operator's own console only)."""
    if isinstance(source, Source):
        return source
    if isinstance(source, Upload):
        return upload_source(source)
    if isinstance(source, Path) or not is_url(source):
        return file_source(Path(source))
    return link_source(source)


def link_source(text: str) -> Source:
    url = normalise_url(text)
    return Source("link", link_media_id(url), url=url, given=text.strip())


def upload_source(upload: Upload) -> Source:
    return Source(
        "upload",
        content_id(upload.data),
        data=upload.data,
        name=upload.filename,
        given=upload.filename,
    )


def file_source(path: Path) -> Source:
    given = str(path)
    path = path.expanduser()
    if not path.is_file():
        raise InvalidSource(f"I can't find a file called {path.name!r}.")
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return Source("file", f"sha256:{digest}", path=path, name=path.name, given=given)


def content_id(data: bytes) -> str:
    """The media id of media known only by its bytes (an upload, a local file)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_url(text: str) -> bool:
    """Whether a source given as text is meant as a link (any scheme) rather than a file path."""
    text = text.strip()
    if _WINDOWS_DRIVE.match(text):
        return False
    return bool(_SCHEME.match(text)) or text.lower().startswith("www.")


def normalise_url(text: str) -> str:
    """The one canonical form of a link: scheme and host in lower case, no default port, no
    fragment; YouTube's short forms become the plain watch link of the video (a playlist link
    keeps only its list). InvalidSource when it cannot be read as a URL at all."""
    text = text.strip()
    if text.lower().startswith("www."):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a bracket left open, a port that is not a number
        raise InvalidSource(NOT_A_LINK) from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    video_id = None
    if host in {"youtu.be", "www.youtu.be"}:
        video_id = parts.path.lstrip("/").split("/")[0] or None
    elif host in _YOUTUBE_HOSTS:
        match = _YOUTUBE_PATH_ID.match(parts.path)
        if match:
            video_id = match.group(1)
        elif parts.path == "/watch":
            video_id = (parse_qs(parts.query).get("v") or [None])[0]
        elif parts.path == "/playlist":
            playlist = (parse_qs(parts.query).get("list") or [None])[0]
            if playlist:
                return "https://www.youtube.com/playlist?" + urlencode({"list": playlist})
    if video_id:
        return "https://www.youtube.com/watch?" + urlencode({"v": video_id})
    userinfo, at, hostport = parts.netloc.rpartition("@")
    hostport = hostport.lower()
    if port is not None and port == _DEFAULT_PORTS.get(scheme):
        hostport = hostport[: hostport.rfind(":")]
    return urlunsplit((scheme, userinfo + at + hostport, parts.path or "/", parts.query, ""))


def link_media_id(url: str) -> str:
    """What a normalised link points at, without fetching it: `<extractor>:<id>` where that id
    is global (GLOBAL_ID_EXTRACTORS, read from the link by yt-dlp's own patterns, so every
    YouTube spelling of a video gives the same), else `url:<the link>`."""
    for extractor in _specific_extractors():
        if extractor.suitable(url):
            name = extractor.ie_key().lower()
            media = extractor.get_temp_id(url)
            if name in GLOBAL_ID_EXTRACTORS and media:
                return f"{name}:{media}"
            break
    return f"url:{url}"


@functools.cache
def _specific_extractors() -> tuple[Any, ...]:
    from yt_dlp.extractor import gen_extractor_classes

    return tuple(ie for ie in gen_extractor_classes() if ie.ie_key() != "Generic")


# --- what a cache may share, and what each answer adds for its own requester ----------------


def answer_key(model: str, version: str, media_id: str) -> str:
    """Where any cache keeps the answer of one model version about one song (both services,
    in process and in Redis, and the worker that writes it)."""
    return f"{model}@{version}:{media_id}"


def warm_up() -> None:
    """Compile yt-dlp's extractor patterns, which the first link's parse would otherwise pay."""
    link_media_id("https://www.youtube.com/watch?v=warmup00000")


# Fields of a Classification that describe the request, not the song: never cached or shared.
_OWN_FIELDS = ("source", "url", "media_id", "timings")


def shareable(result: Classification, source: Source) -> dict[str, Any]:
    """The part of an answer any later request for the same media id may be given (the cache
    entry, a joined job's outcome): genres, segments, tags, the model; a link's page title too,
    since that media id fetches that same page, but never a file's or upload's own name."""
    entry = result.as_json()
    for name in _OWN_FIELDS:
        entry.pop(name, None)
    if source.kind != "link":
        entry["title"] = None
    return entry


def answer_for(entry: Mapping[str, Any], source: Source, genres: tuple[str, ...]) -> Classification:
    """A shared entry as the answer to this request: checked like any other input (ValueError
    when it is not a sound answer of a model with these `genres`), with the requester's own
    title, link and media id put back."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"an answer is an object, not {type(entry).__name__}")
    result = Classification.checked(
        {**entry, "source": str(source), "media_id": source.media_id}, genres
    )
    title = source.own_title or (result.title if source.kind == "link" else None)
    return _with_own(result, source, title)


def own_answer(result: Classification, source: Source) -> Classification:
    """A result just computed for this request, stamped with the request's identity."""
    title = source.own_title or result.title
    return _with_own(result, source, title, timings=result.timings)


def _with_own(
    result: Classification, source: Source, title: str | None, timings: Timings | None = None
) -> Classification:
    from dataclasses import replace

    return replace(
        result,
        source=str(source),
        title=title,
        url=source.url,
        media_id=source.media_id,
        timings=timings or Timings(),
    )
