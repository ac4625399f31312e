"""Mistakes and dead ends each get their own true sentence, the same from `scriabin classify`
and in the console chat, with nothing else on stderr: no traceback, no library's chatter."""

from __future__ import annotations

import io
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.cli import main
from bot.console import ConsoleAdapter
from bot.core import GenreBot
from classifier import netguard
from classifier.service import ClassifierService
from config import Settings

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

pytest_plugins = ["tests.support.http_server"]

EMPTY_FILE = "That file is empty: there's no audio in it."
EMPTY_LINK = "That link leads to an empty file: there's no audio in it."
NOTHING_LISTENING = "Nothing answered at that site's address: it may be down. Try again later."
TYPO = "I couldn't find that site; check the link for typos."
README_EXAMPLE = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def _resolver(*known: str) -> Callable[..., list[tuple]]:
    """The system resolver's stand-in (DNS cannot be arranged here): address literals as the
    real one resolves them, the `known` names to a public address, any other name "not
    known", which is also what a machine without working DNS can say for every name."""
    real = socket.getaddrinfo

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return real(host, port, *args, **kwargs)
        if host in known:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return resolve


def _closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def cases(tmp_path: Path, http_server: LocalServer) -> list[tuple[str, str]]:
    """(what is sent, the sentence it must get)."""
    (tmp_path / "empty.mp3").write_bytes(b"")
    (tmp_path / "empty.flac").write_bytes(b"")
    http_server.add_file("empty.mp3", b"")
    return [
        (str(tmp_path / "empty.mp3"), EMPTY_FILE),
        (str(tmp_path / "empty.flac"), EMPTY_FILE),
        (str(tmp_path / "no such folder" / "sogn.mp3"), "I can't find a file called 'sogn.mp3'."),
        (http_server.url("empty.mp3"), EMPTY_LINK),
        (f"http://127.0.0.1:{_closed_port()}/song.mp3", NOTHING_LISTENING),
        ("https://www.yuotube.com/watch?v=dQw4w9WgXcQ", TYPO),
    ]


@pytest.fixture(autouse=True)
def _local_links_and_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test server is on 127.0.0.1; names resolve where lookups work (the probe's name).
    monkeypatch.setenv("SCRIABIN_ALLOW_PRIVATE_NETWORKS", "1")
    monkeypatch.setattr(netguard, "_unguarded_getaddrinfo", _resolver(netguard.LOOKUP_PROBE))


def test_classify_says_each_sentence_and_nothing_else(
    cases: list[tuple[str, str]], capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["classify", *(source for source, _ in cases)]) == 1
    out, err = capfd.readouterr()
    answers = [block.splitlines() for block in out.strip().split("\n\n")]
    assert answers == [[f"✗ {source}", sentence] for source, sentence in cases]
    assert err == ""


async def test_the_console_says_the_same_sentences(
    cases: list[tuple[str, str]], settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    typed = "".join(f"{source}\n" for source, _ in cases) + "/quit\n"
    chat = io.StringIO()
    async with ClassifierService(settings) as service:
        bot = GenreBot(service, cooldown_s=0, local_files=True)
        await ConsoleAdapter(bot, io.StringIO(typed), chat).run()
    answers = [line for line in chat.getvalue().splitlines() if line.startswith("⚠")]
    assert answers == [f"⚠ {sentence}" for _, sentence in cases]
    assert capfd.readouterr().err == ""


def test_without_dns_the_readme_example_blames_the_network_not_the_link(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A resolver that knows no name at all: the link is fine, the machine cannot look up any.
    monkeypatch.setattr(netguard, "_unguarded_getaddrinfo", _resolver())
    assert main(["classify", "--json", README_EXAMPLE]) == 1
    out, err = capfd.readouterr()
    assert out.strip() == (
        f'{{"source": "{README_EXAMPLE}", "error": "{netguard.NO_LOOKUPS}", '
        '"code": "download_failed"}'
    )
    assert err == ""
