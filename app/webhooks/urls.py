"""Where a webhook may point: the SSRF guard.

A URL must be http or https with a host; an address that is loopback, private, link-local (the cloud metadata
service at 169.254.169.254 included), multicast, reserved or unspecified is refused, at creation and after DNS
resolution at every delivery (a name that later resolves to 127.0.0.1 is refused too). The deliverer then
connects to the very address it checked (no second resolution in between). Redirects are never followed.
MOSTRADOR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true lifts the address rule (tests, private deployments).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

# What `parse` accepts, declared in the OpenAPI document (webhooks and the webhook bot): http or https (any
# case), a host name or IPv4 address, an optional port (0-65535), then a path, query or fragment; no credentials
# (`@` cannot be in the host part), no blanks, no NUL. Which addresses the host may be (no loopback, private or
# metadata address) depends on DNS, which no schema can state: that is a 422 `unsafe_url`.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9][A-Za-z0-9.-]{{0,252}}(:{_PORT})?([/?#][^\s\x00]*)?$"

# Hosts refused by name whatever they resolve to (resolvers of clouds answer them with metadata addresses).
_BLOCKED_NAMES = frozenset({"localhost", "metadata.google.internal", "metadata", "instance-data"})


class UnsafeUrl(ValueError):
    """The URL may not be used for a webhook; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (sent as Host and as the TLS server name)
    port: int
    path: str  # path and query


def parse(url: str) -> Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("only http and https URLs are allowed")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not allowed (put them in the path or a query parameter)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_static(url: str, *, allow_private: bool) -> Target:
    """What can be checked without DNS: the scheme, the host, and a literal address or a refused name."""
    target = parse(url)
    if allow_private:
        return target
    if target.host in _BLOCKED_NAMES or target.host.endswith((".localhost", ".internal")):
        raise UnsafeUrl(f"{target.host} is a local or internal name")
    try:
        literal = ipaddress.ip_address(target.host.strip("[]"))
    except ValueError:
        return target
    if not is_public(literal):
        raise UnsafeUrl(f"{literal} is not a public address")
    return target


Lookup = Callable[[str, int], Awaitable[list[str]]]


async def system_lookup(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve(target: Target, *, allow_private: bool, lookup: Lookup | None = None) -> list[str]:
    """The target's addresses, every one of them public (else UnsafeUrl): connect only to one of these.
    `lookup` is the DNS (the system's by default; tests give one that answers what they need)."""
    host = target.host.strip("[]")
    try:
        # A literal address needs no lookup (the system's would cost a thread hop per delivery); it is checked
        # like any resolved one below.
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await (lookup or system_lookup)(host, target.port)
    if not addresses:
        raise OSError(f"{target.host} has no address")
    if not allow_private:
        for address in addresses:
            if not is_public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise UnsafeUrl(f"{target.host} resolves to {address}, which is not a public address")
    return addresses
