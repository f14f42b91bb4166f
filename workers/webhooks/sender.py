"""One signed POST to a receiver: the SSRF guard after resolution, pinned address, timeouts, a bounded read.

Also used by the webhook bot (a synchronous call that wants the answer's body).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from app.webhooks.signing import signed_headers
from app.webhooks.urls import Lookup, UnsafeUrl, check_static, resolve

MAX_RESPONSE_BYTES = 64 * 1024  # what is read of an answer; the rest is dropped with the connection
RETRYABLE_STATUSES = frozenset({408, 429})


@dataclass(frozen=True)
class Attempt:
    ok: bool  # a 2xx
    retryable: bool  # worth another attempt later
    status: int | None
    latency_ms: int
    error: str | None
    retry_after: float | None = None  # seconds, from a Retry-After header
    body: bytes = b""


class Sender:
    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float,
        timeout: float,
        per_receiver: int,
        lookup: Lookup | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.lookup = lookup
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.per_receiver = per_receiver
        # Created on first use, in the running loop (the webhook bot's sender is configured before there is
        # one). aiohttp, not httpx: about a tenth of httpx's CPU per request (py-spy, bench/webhooks.py:
        # httpx/httpcore took 40% of a worker's samples at 140 deliveries/s, its pool scanning its connections).
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receivers: dict[tuple[str, int], asyncio.Semaphore] = {}

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            self._receivers = {}
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,  # the per-receiver semaphores bound what is in flight
                    limit_per_host=0,
                    keepalive_timeout=30,
                    use_dns_cache=False,  # only literal addresses are connected to: the ones we checked
                ),
                trust_env=False,  # no proxy from the environment: we connect to the address we checked
                cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies are not sent to another
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def post(
        self, url: str, *, secrets: Sequence[str], msg_id: str, body: bytes, timeout: float | None = None
    ) -> Attempt:
        started = time.monotonic()

        def spent() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            target = check_static(url, allow_private=self.allow_private)
            addresses = await resolve(target, allow_private=self.allow_private, lookup=self.lookup)
        except UnsafeUrl as exc:
            return Attempt(False, False, None, spent(), f"refused: {exc}")
        except OSError as exc:
            return Attempt(False, True, None, spent(), str(exc)[:500])
        address = addresses[0]
        host = f"[{address}]" if ipaddress.ip_address(address.split("%", 1)[0]).version == 6 else address
        pinned = f"{target.scheme}://{host}:{target.port}{target.path}"
        default_port = 443 if target.scheme == "https" else 80
        # The receiver judges the timestamp by its own clock (Standard Webhooks tolerates 5 min): real time.
        headers = signed_headers(secrets, msg_id, int(time.time()), body)
        headers["host"] = target.host if target.port == default_port else f"{target.host}:{target.port}"
        # TLS: the name is sent (SNI) and the certificate verified against it, on a connection to the address
        # checked; pooled connections are keyed by that name too.
        server_hostname = target.host if target.scheme == "https" else None
        client = self._client()
        limit = self._receivers.setdefault((target.host, target.port), asyncio.Semaphore(self.per_receiver))
        total = timeout or self.timeout
        try:
            async with (
                limit,
                asyncio.timeout(total),
                client.post(
                    pinned,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    server_hostname=server_hostname,
                    timeout=aiohttp.ClientTimeout(total=total, sock_connect=self.connect_timeout),
                ) as response,
            ):
                received = bytearray()
                while len(received) < MAX_RESPONSE_BYTES:
                    chunk = await response.content.read(MAX_RESPONSE_BYTES - len(received))
                    if not chunk:
                        break
                    received += chunk
                if not response.content.at_eof():
                    response.close()  # the rest is dropped with the connection
        except TimeoutError:
            return Attempt(False, True, None, spent(), f"timed out after {total:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return Attempt(False, True, None, spent(), f"{type(exc).__name__}: {str(exc)[:300]}")
        status = response.status
        body_read = bytes(received[:MAX_RESPONSE_BYTES])
        if 200 <= status < 300:
            return Attempt(True, False, status, spent(), None, body=body_read)
        error = f"HTTP {status}: {body_read[:200].decode(errors='replace')}"
        if 300 <= status < 400:
            return Attempt(False, False, status, spent(), f"HTTP {status}: redirects are not followed")
        retryable = status >= 500 or status in RETRYABLE_STATUSES
        return Attempt(
            False,
            retryable,
            status,
            spent(),
            error,
            retry_after=_retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
        )


def _retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        moment = email.utils.parsedate_to_datetime(value)
        return max(0.0, (moment - now).total_seconds())
    return None
