"""fetch_audio with real yt-dlp against a real local HTTP server: downloads, refusals with their
reasons, the temporary folder's clean-up, the connection guard at every hop, and secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from yt_dlp import YoutubeDL
from yt_dlp.extractor.generic import GenericIE
from yt_dlp.extractor.youtube import YoutubeIE
from yt_dlp.utils import ExtractorError, GeoRestrictedError, UnsupportedError, UserNotLive

from classifier.errors import (
    DownloadFailed,
    InvalidSource,
    LiveStream,
    MediaUnavailable,
    NotAudio,
    PlaylistOnly,
    ScriabinError,
    TooLarge,
    TooLong,
    UnsafeAddress,
    UnsupportedLink,
)
from classifier.fetch import FetchedAudio, explain_download_error, fetch_audio
from classifier.fetch.ytdlp import GUARDED_REQUEST_HANDLERS, youtube_dl_class
from config import Settings
from tests.support.audio_fixtures import write_song

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

# The local HTTP server fixtures (http_server, http_server_factory), loaded by pytest itself
# so that its assertion rewriting applies to them.
pytest_plugins = ["tests.support.http_server"]


def fetch_settings(**overrides: object) -> Settings:
    """Settings for one test, whatever SCRIABIN_* variables the machine running it has set."""
    defaults: dict[str, object] = {
        "allow_private_networks": False,
        "allowed_networks": (),
        "cookies_file": None,
        "max_duration_s": 1200,
        "max_download_mb": 50,
        "network_timeout_s": 5,
    }
    return Settings(**{**defaults, **overrides})


LOCAL = fetch_settings(allow_private_networks=True)
FAKE_SECRET = "s3cr3t-Cookie-Value-7f9a2b"


def leftovers(root: Path) -> list[Path]:
    return list(root.glob("scriabin-*"))


def rss_feed(*items: tuple[str, str, str | None]) -> str:
    """A podcast feed; yt-dlp's generic extractor reads its enclosures as a playlist."""
    entries = "".join(
        f"<item><title>{title}</title><guid>{title}</guid>"
        + (f"<itunes:duration>{duration}</itunes:duration>" if duration else "")
        + f'<enclosure url="{url}" type="audio/mpeg"/></item>'
        for title, url, duration in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel><title>A podcast</title>{entries}</channel></rss>"
    )


# --- downloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "m4a-aac", "webm-opus"])
def test_a_direct_audio_link_downloads_into_a_folder_that_is_removed_afterwards(
    fmt: str,
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 3, fmt)
    url = http_server.url(song.name)
    with fetch_audio(url, LOCAL) as audio:
        assert isinstance(audio, FetchedAudio)
        assert audio.path.read_bytes() == song.read_bytes()
        assert audio.path.parent.parent == temp_root
        assert audio.path.parent.name.startswith("scriabin-")
        assert audio.title == "song"
        assert audio.url == url
        assert audio.duration_s is None  # a bare file has no metadata; the decoder measures it
    assert leftovers(temp_root) == []


def test_the_folder_is_removed_when_the_block_raises(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 2, "mp3")
    with pytest.raises(RuntimeError), fetch_audio(http_server.url(song.name), LOCAL) as audio:
        assert audio.path.is_file()
        raise RuntimeError("the decoder broke")
    assert leftovers(temp_root) == []


def test_the_folder_is_removed_on_keyboard_interrupt(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 2, "mp3")
    with pytest.raises(KeyboardInterrupt), fetch_audio(http_server.url(song.name), LOCAL):
        raise KeyboardInterrupt
    assert leftovers(temp_root) == []


def test_a_file_without_a_content_length_downloads_too(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 2, "mp3")
    with fetch_audio(http_server.url(f"stream/{song.name}"), LOCAL) as audio:
        assert audio.path.read_bytes() == song.read_bytes()
    assert leftovers(temp_root) == []


def test_a_podcast_feed_of_one_episode_is_that_episode(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "episode", 2, "mp3")
    feed = http_server.add_file(
        "feed.rss", rss_feed(("Episode one", http_server.url(song.name), "00:02"))
    )
    with fetch_audio(feed, LOCAL) as audio:
        assert audio.title == "Episode one"
        assert audio.duration_s == 2
        assert audio.url == http_server.url(song.name)
        assert audio.path.read_bytes() == song.read_bytes()


# --- refusals with a reason -------------------------------------------------------------------


def test_playlist_link_is_refused_with_reason_and_no_entry_is_fetched(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 2, "mp3")
    feed = http_server.add_file(
        "feed.rss",
        rss_feed(
            ("One", http_server.url(song.name), None),
            ("Two", http_server.url(song.name) + "?two", None),
        ),
    )
    with pytest.raises(PlaylistOnly, match="playlist"), fetch_audio(feed, LOCAL):
        pass
    assert http_server.paths == ["/feed.rss"]
    assert leftovers(temp_root) == []


def test_media_longer_than_the_limit_is_refused_before_download(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 2, "mp3")
    feed = http_server.add_file(
        "feed.rss", rss_feed(("A long mix", http_server.url(song.name), "01:00:00"))
    )
    settings = fetch_settings(allow_private_networks=True, max_duration_s=1200)
    with pytest.raises(TooLong) as refused, fetch_audio(feed, settings):
        pass
    assert str(refused.value) == "That's 60 minutes long; I only analyse media up to 20 minutes."
    # yt-dlp looked at the episode's headers once; it never downloaded it
    assert http_server.paths.count("/song.mp3") <= 1
    assert leftovers(temp_root) == []


def test_a_live_stream_is_refused(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    manifest = http_server.add_file(
        "live.mpd",
        '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" '
        'availabilityStartTime="2024-01-01T00:00:00Z" minimumUpdatePeriod="PT2S">'
        '<Period id="1" start="PT0S"><AdaptationSet mimeType="audio/mp4" contentType="audio">'
        '<Representation id="audio" codecs="mp4a.40.2" bandwidth="128000">'
        '<SegmentTemplate timescale="1000" duration="2000" initialization="init.mp4" '
        'media="seg-$Number$.m4s" startNumber="1"/></Representation></AdaptationSet>'
        "</Period></MPD>",
    )
    with pytest.raises(LiveStream, match="live stream"), fetch_audio(manifest, LOCAL):
        pass
    assert http_server.paths == ["/live.mpd"]
    assert leftovers(temp_root) == []


@pytest.mark.parametrize("route", ["", "stream/"], ids=["with-length", "without-length"])
def test_a_download_larger_than_the_limit_is_refused_and_removed(
    route: str,
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 3, "mp3")
    assert song.stat().st_size > 10_000
    settings = fetch_settings(allow_private_networks=True, max_download_mb=0.005)  # about 5 KB
    with (
        pytest.raises(TooLarge) as refused,
        fetch_audio(http_server.url(route + song.name), settings),
    ):
        pass
    assert str(refused.value) == "That file is too big for me to download (the limit is 0.005 MB)."
    assert leftovers(temp_root) == []


def test_a_missing_file_is_a_friendly_download_failure(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    with pytest.raises(DownloadFailed) as failed, fetch_audio(http_server.url("gone.mp3"), LOCAL):
        pass
    assert (
        str(failed.value) == "The site says that page doesn't exist (or is gone). Check the link."
    )
    assert leftovers(temp_root) == []


def test_a_page_without_media_is_an_unsupported_link(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    page = http_server.add_file(
        "about.html", "<html><head><title>About us</title></head><body>Hello</body></html>"
    )
    with pytest.raises(UnsupportedLink, match="couldn't find any audio"), fetch_audio(page, LOCAL):
        pass
    assert leftovers(temp_root) == []


def test_a_site_that_does_not_answer_in_time_is_a_friendly_timeout(
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    settings = fetch_settings(allow_private_networks=True, network_timeout_s=0.3)
    slow = http_server.url("slow?seconds=3")
    with pytest.raises(DownloadFailed, match="too long to answer"), fetch_audio(slow, settings):
        pass
    assert leftovers(temp_root) == []


def test_links_that_are_not_web_addresses_never_reach_yt_dlp(temp_root: Path) -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/a.mp3", "javascript:alert(1)", ""):
        with pytest.raises(InvalidSource), fetch_audio(url, LOCAL):
            pass
    assert leftovers(temp_root) == []


# --- the connection guard at every hop --------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",
        "0x7f000001",
        "0177.0.0.1",
        "127.1",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
    ],
)
def test_private_links_are_refused_when_private_networks_are_not_allowed(
    host: str,
    http_server: LocalServer,
    temp_root: Path,
) -> None:
    song = write_song(http_server.root / "song", 2, "mp3")
    with (
        pytest.raises(UnsafeAddress),
        fetch_audio(f"http://{host}:{http_server.port}/{song.name}", fetch_settings()),
    ):
        pass
    assert http_server.requests == []
    assert leftovers(temp_root) == []


def test_a_redirect_into_a_private_network_is_refused_at_connect_time(
    http_server_factory: Callable[..., LocalServer],
    temp_root: Path,
) -> None:
    front = http_server_factory("127.0.0.1")
    inside = http_server_factory("127.0.0.2")
    song = write_song(inside.root / "song", 2, "mp3")
    settings = fetch_settings(allowed_networks=["127.0.0.1/32"])
    link = front.redirect_url(inside.url(song.name))
    with (
        pytest.raises(UnsafeAddress, match="private or local network"),
        fetch_audio(link, settings),
    ):
        pass
    assert [path.split("?")[0] for path in front.paths] == ["/redirect"]
    assert inside.requests == []
    assert leftovers(temp_root) == []


def test_the_same_redirect_is_followed_when_private_networks_are_allowed(
    http_server_factory: Callable[..., LocalServer],
    temp_root: Path,
) -> None:
    front = http_server_factory("127.0.0.1")
    inside = http_server_factory("127.0.0.2")
    song = write_song(inside.root / "song", 2, "mp3")
    with fetch_audio(front.redirect_url(inside.url(song.name)), LOCAL) as audio:
        assert audio.path.read_bytes() == song.read_bytes()
        assert audio.url == inside.url(song.name)


def test_a_media_url_picked_from_a_page_is_held_to_the_same_rule(
    http_server_factory: Callable[..., LocalServer],
    temp_root: Path,
) -> None:
    front = http_server_factory("127.0.0.1")
    inside = http_server_factory("127.0.0.2")
    song = write_song(inside.root / "song", 2, "mp3")
    page = front.add_file(
        "player.html",
        "<html><head><title>Player</title></head><body>"
        f'<audio src="{inside.url(song.name)}" controls></audio></body></html>',
    )
    settings = fetch_settings(allowed_networks=["127.0.0.1/32"])
    with pytest.raises(UnsafeAddress), fetch_audio(page, settings):
        pass
    assert inside.requests == []
    assert leftovers(temp_root) == []


def test_yt_dlp_only_uses_http_stacks_whose_connections_the_guard_sees() -> None:
    with youtube_dl_class()({"quiet": True}) as ydl:
        handlers = set(ydl._request_director.handlers)
    assert handlers <= GUARDED_REQUEST_HANDLERS
    assert "Requests" in handlers or "Urllib" in handlers


# --- secrets ----------------------------------------------------------------------------------


@pytest.fixture
def cookies_file(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "cookies.txt"
    path.parent.mkdir()
    path.write_text(
        "# Netscape HTTP Cookie File\n"
        f"127.0.0.1\tFALSE\t/\tFALSE\t2147483647\tSID\t{FAKE_SECRET}\n"
        # A broken line: yt-dlp itself would print it, value and all, to stderr.
        f"127.0.0.1\tFALSE\t/\tFALSE\tnever\tBROKEN\t{FAKE_SECRET}-broken\n"
    )
    return path


def test_cookies_are_used_but_never_logged_and_the_file_is_not_modified(
    cookies_file: Path,
    http_server: LocalServer,
    temp_root: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    before = cookies_file.read_bytes()
    mtime = cookies_file.stat().st_mtime_ns
    song = write_song(http_server.root / "song", 2, "mp3")
    settings = fetch_settings(allow_private_networks=True, cookies_file=cookies_file)
    caplog.set_level(logging.DEBUG)
    with fetch_audio(http_server.url(song.name) + "?token=abc123xyz&x=1", settings) as audio:
        assert audio.path.is_file()
    with pytest.raises(DownloadFailed), fetch_audio(http_server.url("gone.mp3"), settings):
        pass

    sent_cookies = [request.headers.get("Cookie", "") for request in http_server.requests]
    assert any(FAKE_SECRET in cookie for cookie in sent_cookies), "the cookie file was not used"
    assert not any("BROKEN" in cookie for cookie in sent_cookies)
    output = capfd.readouterr()
    logged = caplog.text + output.out + output.err
    assert any(record.name.startswith("classifier.fetch") for record in caplog.records)
    assert "skipped 1 malformed line(s) of the cookies file" in caplog.text
    assert FAKE_SECRET not in logged
    assert str(cookies_file) not in logged
    assert "abc123xyz" not in logged
    for line in before.decode().splitlines()[1:]:
        assert line not in logged
    assert cookies_file.read_bytes() == before
    assert cookies_file.stat().st_mtime_ns == mtime
    assert leftovers(temp_root) == []


# --- explaining yt-dlp's errors ---------------------------------------------------------------


def _raised(action: Callable[[], object]) -> ExtractorError:
    with pytest.raises(ExtractorError) as raised:
        action()
    return raised.value


def _youtube_reason(reason: str) -> ExtractorError:
    """The error YouTube's extractor raises for a playability reason (see _video.py)."""
    youtube = YoutubeIE()
    if "sign in" in reason.lower():
        reason = f"{reason.strip().removesuffix('.')}. {youtube._youtube_login_hint}"
    return _raised(lambda: youtube.raise_no_formats(reason, expected=True, video_id="dQw4w9WgXcQ"))


YOUTUBE_CASES = [
    (
        "Private video. Sign in if you've been granted access to this video",
        MediaUnavailable,
        "private",
    ),
    (
        "Sign in to confirm you\u2019re not a bot. This helps protect our community.",
        MediaUnavailable,
        "human check",
    ),
    (
        "Sign in to confirm your age. This video may be inappropriate for some users.",
        MediaUnavailable,
        "age-restricted",
    ),
    (
        "Join this channel to get access to members-only content like this video, "
        "and other exclusive perks.",
        MediaUnavailable,
        "members only",
    ),
    (
        "This video is available to this channel's members on level: Fans (or any higher "
        "level). Join this channel to get access to members-only content and other exclusive "
        "perks.",
        MediaUnavailable,
        "members only",
    ),
    ("Video unavailable. This video has been removed by the uploader", MediaUnavailable, "removed"),
    (
        "Video unavailable. This video is no longer available because the YouTube account "
        "associated with this video has been terminated.",
        MediaUnavailable,
        "removed",
    ),
    ("Video unavailable", MediaUnavailable, "removed"),
    ("This live event will begin in 3 hours.", LiveStream, "live stream"),
    ("Premieres in 2 hours", LiveStream, "live stream"),
    ("This video is DRM protected", UnsupportedLink, "copy-protected"),
]


@pytest.mark.parametrize(("reason", "kind", "words"), YOUTUBE_CASES)
def test_youtube_reasons_are_explained(reason: str, kind: type, words: str) -> None:
    error = _youtube_reason(reason)
    explained = explain_download_error(f"ERROR: {error}", error)
    assert type(explained) is kind
    assert words in str(explained)


def test_the_bot_check_suggests_trying_later_or_cookies() -> None:
    error = _youtube_reason("Sign in to confirm you\u2019re not a bot")
    text = str(explain_download_error(f"ERROR: {error}", error))
    assert "try again later" in text.lower() and "cookies" in text


def test_geo_restriction_is_explained_by_type_and_by_text() -> None:
    youtube = YoutubeIE()
    error = _raised(
        lambda: youtube.raise_geo_restricted(
            "The uploader has not made this video available in your country", ["DE"]
        )
    )
    assert isinstance(error, GeoRestrictedError)
    message = (
        f"ERROR: {error.msg}\nThis video is available in Germany.\n"
        "You might want to use a VPN or a proxy server (with --proxy) to workaround."
    )
    assert "country" in str(explain_download_error(message, error))
    assert "country" in str(explain_download_error(message))
    default = _raised(youtube.raise_geo_restricted)
    assert isinstance(explain_download_error(f"ERROR: {default}"), MediaUnavailable)


def test_login_walls_are_explained() -> None:
    error = _raised(YoutubeIE().raise_login_required)
    explained = explain_download_error(f"ERROR: {error}", error)
    assert isinstance(explained, MediaUnavailable)
    assert "signed-in account" in str(explained)


@pytest.mark.parametrize(
    ("message", "kind", "words"),
    [
        (
            f"ERROR: {UnsupportedError('https://example.com/about')}",
            UnsupportedLink,
            "audio or video",
        ),
        (
            "ERROR: [youtube] dQw4w9WgXcQ: Requested format is not available. "
            "Use --list-formats for a list of available formats",
            UnsupportedLink,
            "audio or video",
        ),
        (
            "ERROR: [generic] gone: Unable to download webpage: HTTP Error 404: Not Found "
            "(caused by <HTTPError 404: Not Found>)",
            DownloadFailed,
            "doesn't exist",
        ),
        (
            "ERROR: unable to download video data: HTTP Error 403: Forbidden",
            DownloadFailed,
            "refused",
        ),
        (
            "ERROR: [generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests",
            DownloadFailed,
            "limiting",
        ),
        (
            "ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable",
            DownloadFailed,
            "server error",
        ),
        (
            "ERROR: [generic] x: Unable to download webpage: HTTPSConnectionPool("
            "host='example.com', port=443): Read timed out. (read timeout=20)",
            DownloadFailed,
            "too long",
        ),
        (
            # The link's own name resolved before yt-dlp began: not a typo in the link.
            "ERROR: [generic] x: Unable to download webpage: [Errno -2] Name or service not known",
            DownloadFailed,
            "couldn't look up the address of a server",
        ),
        (
            "ERROR: [download] Got error: [Errno 111] Connection refused. "
            "Giving up after 2 retries",
            DownloadFailed,
            "Nothing answered",
        ),
        (
            "ERROR: [generic] x: Unable to download webpage: <urlopen error [Errno 101] Network "
            "is unreachable>",
            DownloadFailed,
            "couldn't reach that site",
        ),
        (
            "ERROR: [download] Got error: Connection reset by peer. Giving up after 2 retries",
            DownloadFailed,
            "broke off",
        ),
        ("ERROR: Did not get any data blocks", NotAudio, "empty file"),
        (
            "[download] File is larger than max-filesize (123456 bytes > 1000 bytes). Aborting.",
            TooLarge,
            "too big",
        ),
        (
            "ERROR: [youtube] dQw4w9WgXcQ: This content isn't available, try again later.",
            DownloadFailed,
            "try again",
        ),
        (
            "ERROR: [somesite] 123: Unable to extract title; please report this issue on  "
            "https://github.com/yt-dlp/yt-dlp/issues?q= ",
            DownloadFailed,
            "couldn't download",
        ),
    ],
)
def test_other_yt_dlp_messages_are_explained(message: str, kind: type, words: str) -> None:
    explained = explain_download_error(message)
    assert type(explained) is kind
    assert words in str(explained)


def test_an_extractor_without_formats_is_an_unsupported_link() -> None:
    ydl = YoutubeDL({"quiet": True})
    error = _raised(lambda: ydl.raise_no_formats({"id": "page", "extractor": "generic"}))
    assert "No video formats found!" in str(error)
    assert isinstance(explain_download_error(f"ERROR: {error}", error), UnsupportedLink)


def test_a_channel_that_is_not_live_is_explained_by_type() -> None:
    error = UserNotLive(video_id="somechannel")
    assert isinstance(explain_download_error(f"ERROR: {error}", error), LiveStream)


def test_unsupported_error_from_the_generic_extractor_is_explained_by_type() -> None:
    error = _raised(lambda: GenericIE().raise_no_formats(UnsupportedError("https://a.example/")))
    assert isinstance(explain_download_error("ERROR: something else", error), UnsupportedLink)


@pytest.mark.parametrize("reason", [case[0] for case in YOUTUBE_CASES])
def test_explanations_are_fit_for_chat(reason: str) -> None:
    error = _youtube_reason(reason)
    text = str(explain_download_error(f"ERROR: {error}", error))
    assert isinstance(explain_download_error(reason), ScriabinError)
    assert len(text) < 160
    for leak in ("http", "--", "ERROR", "yt-dlp", "dQw4w9WgXcQ", "Traceback"):
        assert leak not in text
