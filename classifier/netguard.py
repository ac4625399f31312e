"""Server-side request forgery guard: links may only lead to public internet addresses, checked
once before fetching and again at every connection yt-dlp opens (redirects, media URLs, DNS)."""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from config import Settings

from .errors import DownloadFailed, InvalidSource, UnsafeAddress

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WEB_SCHEMES = frozenset({"http", "https"})
UNSAFE_ADDRESS_TEXT = (
    "That link leads to a private or local network address, which I'm not allowed to fetch."
)
NO_SUCH_SITE = "I couldn't find that site; check the link for typos."
NO_LOOKUPS = (
    "I can't look up any site's address right now: the network is failing on my side, "
    "not your link. Try again later."
)
# A name that resolves wherever name lookups work (IANA keeps it for examples): asked only when
# a link's name was not found, to tell a mistyped link from a machine that cannot look up any.
LOOKUP_PROBE = "example.com"

# IPv6 ranges that carry an IPv4 address in their low 32 bits (RFC 6052 NAT64, RFC 8215 local
# NAT64, deprecated IPv4-compatible addresses); `ipaddress` does not unwrap these by itself.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


# The guard's state: which guard (if any) the current thread is under, and the resolver the
# guard wraps, kept so that check_url can resolve without being judged twice.
_state = threading.local()
_install_lock = threading.Lock()
_unguarded_getaddrinfo: Callable[..., list[tuple[Any, ...]]] | None = None


class AddressRefused(OSError):
    """Raised from name resolution inside a guarded thread, so the connection is never opened;
    an OSError because every HTTP stack treats that as a failed connection and reports it."""


# --- the address policy -------------------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a packet to `address` may really end up at (6to4 gateways, Teredo
    servers and clients, the deprecated IPv4-compatible form)."""
    embedded: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in _IPV4_COMPATIBLE:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _is_global_unicast(address: IPAddress) -> bool:
    # is_global alone lets multicast through (224.0.0.1 is "global" to Python 3.11), and the
    # flags differ a little between Python versions, so every flag is asked explicitly.
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def is_public_address(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses, judging IPv6 forms that wrap an
    IPv4 address (mapped, 6to4, Teredo, NAT64) by the IPv4 address inside as well."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _is_global_unicast(address.ipv4_mapped)
        if address in _NAT64:
            # DNS64 answers with these for every IPv4-only site on IPv6-only networks; Python
            # counts the range as reserved, so only the IPv4 address inside can decide.
            return _is_global_unicast(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address in _NAT64_LOCAL:
            return False
        if not all(_is_global_unicast(inner) for inner in _embedded_ipv4(address)):
            return False
    return _is_global_unicast(address)


@functools.lru_cache(maxsize=32)
def _parse_networks(
    cidrs: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def address_allowed(address: IPAddress, settings: Settings) -> bool:
    """The one policy both checks use: public, explicitly allowed, or private networks allowed."""
    if settings.allow_private_networks:
        return True
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    networks = _parse_networks(tuple(settings.allowed_networks))
    if any(candidate in network for candidate in candidates for network in networks):
        return True
    return is_public_address(address)


def _sockaddr_address(sockaddr: tuple[Any, ...]) -> IPAddress | None:
    try:
        return ipaddress.ip_address(sockaddr[0])
    except (ValueError, IndexError, TypeError):
        return None


def _refused_addresses(results: list[tuple[Any, ...]], settings: Settings) -> list[str]:
    refused = []
    for _family, _type, _proto, _canonname, sockaddr in results:
        address = _sockaddr_address(sockaddr)
        # Anything that is not an IP address (an AF_UNIX path, say) is not a web server either.
        if address is None or not address_allowed(address, settings):
            refused.append(str(sockaddr[0]))
    return refused


# --- the check before fetching --------------------------------------------------------------


def _split_web_url(url: str) -> tuple[str, int]:
    """Host and port of an http(s) URL, or InvalidSource with a reason a user can act on."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidSource("Send me a link that starts with http:// or https://.")
    url = url.strip()
    # Whitespace, control characters and backslashes are read differently by different URL
    # parsers; refusing them keeps what is checked here the same as what yt-dlp fetches.
    if any(char.isspace() or ord(char) < 0x20 or char in "\x7f\\" for char in url):
        raise InvalidSource("That link contains characters a web address can't have.")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidSource("That doesn't look like a valid web address.") from None
    if parts.scheme.lower() not in WEB_SCHEMES:
        raise InvalidSource("I can only fetch http:// and https:// links.")
    if "@" in parts.netloc:
        raise InvalidSource("Links with a user name or password in them aren't supported.")
    host = parts.hostname
    if not host:
        raise InvalidSource("That link has no website address in it.")
    if "%" in host:
        raise InvalidSource("That doesn't look like a valid web address.")
    return host, port or (443 if parts.scheme.lower() == "https" else 80)


def _resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    resolve = _unguarded_getaddrinfo or socket.getaddrinfo
    try:
        results = resolve(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise InvalidSource("That doesn't look like a valid web address.") from None
    except socket.gaierror as error:
        not_found = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
        if error.errno in not_found and _lookups_work(resolve):
            raise InvalidSource(NO_SUCH_SITE) from None
        log.info("name lookup failed for %s: %s", host, error)
        if error.errno in not_found:
            raise DownloadFailed(NO_LOOKUPS) from None
        raise DownloadFailed(
            "I couldn't look up that site just now; try again in a moment."
        ) from None
    if not results:
        raise InvalidSource(NO_SUCH_SITE)
    return results


def _lookups_work(resolve: Callable[..., list[tuple[Any, ...]]]) -> bool:
    """Whether this machine can look names up at all: a resolver that is down, or absent,
    can answer "no such name" for every name, and then a link is not to blame."""
    try:
        return bool(resolve(LOOKUP_PROBE, 443, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        return False


def check_url(url: str, settings: Settings) -> None:
    """Refuse anything but an http(s) link whose host resolves only to allowed addresses."""
    host, port = _split_web_url(url)
    refused = _refused_addresses(_resolve(host, port), settings)
    if refused:
        log.info("refused link to %s: resolves to %s", host, ", ".join(refused))
        raise UnsafeAddress(UNSAFE_ADDRESS_TEXT)


# --- the check at every connection ----------------------------------------------------------


@dataclass
class Guard:
    """The policy of one guarded block, and the connections it refused."""

    settings: Settings
    refused: list[str] = field(default_factory=list)


def _current_guard() -> Guard | None:
    return getattr(_state, "guard", None)


def install_guard() -> None:
    """Wrap socket.getaddrinfo once per process. The wrapper only acts in threads inside
    `guarded()`, so the chat clients' own connections elsewhere are untouched."""
    global _unguarded_getaddrinfo
    with _install_lock:
        if _unguarded_getaddrinfo is not None:
            return
        original = socket.getaddrinfo

        @functools.wraps(original)
        def guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            results = original(host, port, *args, **kwargs)
            guard = _current_guard()
            if guard is None:
                return results
            refused = _refused_addresses(results, guard.settings)
            if refused:
                # One bad address refuses the name: a host that mixes public and private
                # answers is what a DNS rebinding attack looks like.
                guard.refused.append(f"{host} ({', '.join(refused)})")
                raise AddressRefused(f"refused to connect to {host}: not a public address")
            return results

        _unguarded_getaddrinfo = original
        socket.getaddrinfo = guarded_getaddrinfo


@contextmanager
def guarded(settings: Settings) -> Iterator[Guard]:
    """Within this block, in this thread, every name resolution (hence every connection) is
    held to the address policy. If anything was refused, the block ends in UnsafeAddress,
    whatever error the HTTP stack turned the refusal into."""
    install_guard()
    guard = Guard(settings)
    previous = _current_guard()
    _state.guard = guard
    try:
        yield guard
    except Exception as error:
        if guard.refused:
            log.info("refused connection to %s", "; ".join(guard.refused))
            raise UnsafeAddress(UNSAFE_ADDRESS_TEXT) from error
        raise
    finally:
        _state.guard = previous
    if guard.refused:
        log.info("refused connection to %s", "; ".join(guard.refused))
        raise UnsafeAddress(UNSAFE_ADDRESS_TEXT)
