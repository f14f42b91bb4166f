"""Fetching a send's `media.url`: http(s) only, public addresses only (the request goes to the address that was
checked, so a DNS answer that changes between the check and the connection cannot redirect it inward), a few
redirects (each checked again), one deadline for all of it, and WhatsApp's size limit for the media's type."""

from __future__ import annotations

import asyncio
import ipaddress
import mimetypes
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx

from app.media.errors import MediaUrlRefused
from app.media.intake import Received, receive
from app.media.limits import MediaType, base_mime, type_for

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float
    max_bytes: int
    allow_private: bool = False


def _refuse(message: str, url: str, **details: object) -> MediaUrlRefused:
    return MediaUrlRefused(message, details={"url": url, **details})


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int, url: str, allow_private: bool) -> str:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _refuse(f"the media URL's host {host!r} does not resolve", url) from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise _refuse(f"the media URL's host {host!r} does not resolve", url)
    if not allow_private:
        refused = [a for a in addresses if not _public(a)]
        if refused:
            raise _refuse(
                "the media URL points at a private, loopback or reserved address: refused",
                url,
                address=refused[0],
            )
    return addresses[0]


def _file_name(url: str, response: httpx.Response) -> str | None:
    disposition = response.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename" and value:
            return value.strip('"')[:255] or None
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return last[:255] or None


async def fetch(url: str, *, kind: MediaType | None, policy: FetchPolicy) -> tuple[Received, str | None]:
    """The media at `url`, received (see app/media/intake.py), and its file name if it has one."""
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            return await _fetch(url, kind, policy)
    except TimeoutError as exc:
        raise _refuse(f"fetching the media URL took longer than {policy.timeout_seconds:g} s", url) from exc


async def _fetch(url: str, kind: MediaType | None, policy: FetchPolicy) -> tuple[Received, str | None]:
    async with httpx.AsyncClient(timeout=policy.timeout_seconds, follow_redirects=False) as client:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _refuse("the media URL must be an http or https URL", url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = await _resolve(parts.hostname, port, url, policy.allow_private)
            host_in_url = f"[{address}]" if ":" in address else address
            pinned = urlunsplit((parts.scheme, f"{host_in_url}:{port}", parts.path or "/", parts.query, ""))
            host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
            request = client.build_request(
                "GET",
                pinned,
                headers={"Host": host_header, "Accept": "*/*"},
                extensions={"sni_hostname": parts.hostname},
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _refuse(f"the media URL could not be fetched: {exc.__class__.__name__}", url) from exc
            try:
                if response.is_redirect and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise _refuse(
                        f"the media URL answered {response.status_code}", url, status=response.status_code
                    )
                mime = base_mime(response.headers.get("content-type"))
                if mime in ("", "application/octet-stream", "binary/octet-stream"):
                    mime = base_mime(mimetypes.guess_type(parts.path)[0]) or mime
                length = response.headers.get("content-length")
                received = await receive(
                    _chunks(response),
                    kind=kind or type_for(mime),
                    mime=mime,
                    overall=policy.max_bytes,
                    declared_size=int(length) if length and length.isdigit() else None,
                )
                return received, _file_name(current, response)
            finally:
                await response.aclose()
        raise _refuse(f"the media URL redirected more than {MAX_REDIRECTS} times", url)


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    async for chunk in response.aiter_bytes():
        yield chunk
