"""The server-side request forgery guard: which links and addresses are refused, before
fetching and at connection time."""

from __future__ import annotations

import importlib
import ipaddress
import socket
import threading
import urllib.request
from typing import TYPE_CHECKING

import pytest

from classifier import netguard
from classifier.errors import DownloadFailed, InvalidSource, UnsafeAddress
from classifier.netguard import (
    LOOKUP_PROBE,
    NO_LOOKUPS,
    AddressRefused,
    address_allowed,
    check_url,
    guarded,
    is_public_address,
)
from config import Settings

if TYPE_CHECKING:
    from tests.support.http_server import LocalServer

# The local HTTP server fixtures (http_server, http_server_factory), loaded by pytest itself
# so that its assertion rewriting applies to them.
pytest_plugins = ["tests.support.http_server"]

STRICT = Settings(allow_private_networks=False, allowed_networks=())

# Host spellings that all reach this machine, the local test server's address or its port.
LOCAL_SERVER_FORMS = [
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "127.1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
]
OTHER_PRIVATE_FORMS = [
    "169.254.169.254",
    "10.0.0.1",
    "192.168.1.1",
    "172.16.0.1",
    "100.64.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[fe80::1]",
    "[fc00::1]",
    "[ff02::1]",
    "[::]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",
    "[::ffff:169.254.169.254]",
]


@pytest.mark.parametrize("host", LOCAL_SERVER_FORMS)
def test_every_spelling_of_this_machine_is_refused_before_any_request(
    host: str,
    http_server: LocalServer,
) -> None:
    http_server.add_file("song.mp3", b"not really audio")
    with pytest.raises(UnsafeAddress) as refused:
        check_url(f"http://{host}:{http_server.port}/song.mp3", STRICT)
    assert "private or local network" in str(refused.value)
    assert http_server.requests == []


@pytest.mark.parametrize("host", OTHER_PRIVATE_FORMS)
def test_private_link_local_and_reserved_addresses_are_refused(host: str) -> None:
    with pytest.raises(UnsafeAddress):
        check_url(f"https://{host}/latest/meta-data/", STRICT)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/song.mp3",
        "javascript:alert(1)",
        "data:audio/mpeg;base64,AAAA",
        "gopher://example.com/",
        "",
        "   ",
        "http://",
        "http:///song.mp3",
        "//example.com/song.mp3",
        "example.com/song.mp3",
        "http://user:secret@example.com/song.mp3",
        "http://example.com@127.0.0.1/song.mp3",
        "http://exa mple.com/",
        "http://example.com\\@127.0.0.1/",
        "http://[::1/",
        "http://example.com:99999/",
        "http://%31%32%37.0.0.1/",
    ],
)
def test_links_that_are_not_plain_web_addresses_are_invalid(url: str) -> None:
    with pytest.raises(InvalidSource) as invalid:
        check_url(url, STRICT)
    message = str(invalid.value)
    assert message and len(message) < 120
    assert "Traceback" not in message


def _resolver_knowing(*names: str):
    """A stand-in for the system resolver (DNS cannot be arranged here): `names` resolve to
    a public address, every other name is "not known", as a real resolver says it."""

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[tuple]:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return resolve


def test_a_name_that_does_not_resolve_is_explained_as_a_typo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(netguard, "_unguarded_getaddrinfo", _resolver_knowing(LOOKUP_PROBE))
    with pytest.raises(InvalidSource, match="couldn't find that site; check the link for typos"):
        check_url("https://no-such-host.invalid/song.mp3", STRICT)


def test_when_no_name_resolves_the_network_is_blamed_not_the_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A machine without working DNS: its resolver says "not known" for every name, YouTube's
    # included, so "check the link for typos" would send the user after a mistake not made.
    monkeypatch.setattr(netguard, "_unguarded_getaddrinfo", _resolver_knowing())
    with pytest.raises(DownloadFailed) as failed:
        check_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ", STRICT)
    assert str(failed.value) == NO_LOOKUPS
    assert "typo" not in str(failed.value)


def test_private_addresses_pass_when_private_networks_are_allowed(
    http_server: LocalServer,
) -> None:
    check_url(http_server.url("song.mp3"), Settings(allow_private_networks=True))


def test_allowed_networks_open_only_the_listed_range() -> None:
    settings = Settings(allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    check_url("http://127.0.0.1:8080/", settings)
    check_url("http://[::ffff:127.0.0.1]:8080/", settings)
    with pytest.raises(UnsafeAddress):
        check_url("http://127.0.0.2:8080/", settings)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("100.100.100.100", False),
        ("169.254.169.254", False),
        ("192.0.2.10", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("::", False),
        ("::1", False),
        ("::7f00:1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:192.168.0.1", False),
        ("64:ff9b::7f00:1", False),
        ("64:ff9b:1::a00:1", False),
        ("2002:7f00:1::1", False),
        ("2002:a00:1::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
    ],
)
def test_only_globally_routable_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public
    assert address_allowed(ipaddress.ip_address(address), STRICT) is public


def test_guarded_thread_cannot_connect_to_a_private_address(
    http_server: LocalServer,
) -> None:
    with pytest.raises(UnsafeAddress), guarded(STRICT):
        socket.create_connection(("127.0.0.1", http_server.port), timeout=2).close()
    assert http_server.requests == []


@pytest.mark.parametrize(
    "connect",
    [
        "yt_dlp.networking._helper.create_connection",  # yt-dlp's urllib and websockets handlers
        "urllib3.util.connection.create_connection",  # yt-dlp's requests handler
        "socket.create_connection",
    ],
)
def test_every_connection_helper_yt_dlp_uses_is_guarded(
    connect: str,
    http_server: LocalServer,
) -> None:
    module_name, _, function_name = connect.rpartition(".")
    create_connection = getattr(importlib.import_module(module_name), function_name)
    with pytest.raises(UnsafeAddress), guarded(STRICT):
        create_connection(("localhost", http_server.port), timeout=2).close()
    assert http_server.requests == []


def test_a_refusal_swallowed_inside_the_block_still_ends_it_in_unsafe_address(
    http_server: LocalServer,
) -> None:
    with pytest.raises(UnsafeAddress), guarded(STRICT):
        try:
            urllib.request.urlopen(http_server.url("song.mp3"), timeout=2)
        except OSError as error:
            assert isinstance(error.__cause__ or error.reason, AddressRefused)
    assert http_server.requests == []


def test_the_guard_only_acts_in_the_thread_that_entered_it(
    http_server: LocalServer,
) -> None:
    http_server.add_file("hello.txt", "hello")
    answers: list[bytes] = []

    def other_thread() -> None:
        with urllib.request.urlopen(http_server.url("hello.txt"), timeout=2) as response:
            answers.append(response.read())

    with guarded(STRICT):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(timeout=5)
    assert answers == [b"hello"]
    # and once the block is over, this thread is free again
    with urllib.request.urlopen(http_server.url("hello.txt"), timeout=2) as response:
        assert response.read() == b"hello"


def test_guard_lets_allowed_networks_through_at_connect_time(
    http_server_factory,
) -> None:
    allowed = http_server_factory("127.0.0.1")
    other = http_server_factory("127.0.0.2")
    allowed.add_file("a.txt", "a")
    other.add_file("b.txt", "b")
    settings = Settings(allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    with guarded(settings), urllib.request.urlopen(allowed.url("a.txt"), timeout=2) as answer:
        assert answer.read() == b"a"
    with pytest.raises(UnsafeAddress), guarded(settings):
        urllib.request.urlopen(other.url("b.txt"), timeout=2)
    assert other.requests == []
