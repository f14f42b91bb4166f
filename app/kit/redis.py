"""Redis clients: one Redis, or a Redis Cluster (`redis+cluster://` / `rediss+cluster://`).

A cluster URL names one or more seed nodes, comma-separated (`redis+cluster://10.0.0.1:7000,10.0.0.2:7000`);
the client discovers the others. A Redis Cluster has database 0 only. `create_redis` returns the cluster client
typed as `Redis`: it speaks the same commands, and the few places where a cluster differs (commands over keys
of several slots: the streams' XREADGROUP, the lease scripts, MULTI) ask `is_cluster` and group their keys with
`group_by_slot`; in cluster mode the per-store keys carry a hash tag (`app.contracts.use_hash_tags`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Per node: every owned slot group of a process may hold one blocking XREADGROUP at a time (app/kit/streams.py).
CLUSTER_MAX_CONNECTIONS = 1024


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def create_redis(url: str, *, max_connections: int = 64) -> Redis:
    if is_cluster_url(url):
        return create_cluster(url)
    # A blocking pool: a burst (a thousand stores stopping at once) waits for a connection instead of failing.
    # health_check_interval: a connection idle behind a NAT or a restarted Redis is noticed before use.
    # socket_timeout=None: redis-py 8 reads every reply under a 5 s timer by default, and arming one per
    # pipelined command cost a tenth of the session manager's CPU. A Redis that dies closes its sockets; one
    # that is unreachable is caught by TCP keepalive; both raise, and every caller retries.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        decode_responses=True,
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=None,
        socket_keepalive=True,
    )
    return Redis(connection_pool=pool)


def create_cluster(url: str) -> Redis:
    """A RedisCluster client for `redis+cluster://[user:password@]host:port[,host:port...][/0]`."""
    from app.contracts import use_hash_tags

    parts = urlsplit(url)
    scheme = CLUSTER_SCHEMES[parts.scheme.lower()]
    netloc = parts.netloc.rsplit("@", 1)
    credentials, hosts = (netloc[0], netloc[1]) if len(netloc) == 2 else ("", netloc[0])
    username, _, password = credentials.partition(":")
    database = parts.path.strip("/")
    if database not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 only, not {database!r}")
    nodes = []
    for host_port in hosts.split(","):
        host, _, port = host_port.strip().rpartition(":")
        nodes.append(ClusterNode(host.strip("[]") or "127.0.0.1", int(port or 6379)))
    use_hash_tags(True)
    cluster = RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=scheme == "rediss",
        decode_responses=True,
        max_connections=CLUSTER_MAX_CONNECTIONS,
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=None,
        socket_keepalive=True,
    )
    return cast(Redis, cluster)


def seed_url(url: str) -> str:
    """A cluster URL's first seed node as a plain Redis URL (for a single connection: a check, a ping); any
    other URL unchanged."""
    if not is_cluster_url(url):
        return url
    scheme, rest = url.split("://", 1)
    return f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest.split(',', 1)[0].split('/', 1)[0]}/0"


def is_cluster(redis: Redis | Any) -> bool:
    return isinstance(redis, RedisCluster)


def group_by_slot(redis: Redis, keys: Sequence[str]) -> list[list[int]]:
    """Indexes of `keys`, grouped by hash slot (one group for all of them on a single Redis): the keys of one
    multi-key command or script must share a slot in a cluster."""
    if not is_cluster(redis):
        return [list(range(len(keys)))] if keys else []
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(index)
    return list(groups.values())


StreamEntries = list[tuple[str, list[tuple[str, dict[str, str]]]]]


# A blocking read that returned a partial batch waits this long before the caller reads again: under a steady
# trickle, reading (and then flushing) every entry alone costs a round trip per entry.
READ_LINGER = 0.003
CLUSTER_POLL_SECONDS = 0.02


async def read_group(
    redis: Redis, group: str, consumer: str, streams: dict[str, str], *, count: int, block: int | None = None
) -> StreamEntries:
    """XREADGROUP with its reply typed (redis-py types it loosely); entries deleted meanwhile are skipped. On a
    cluster, streams of several slots are read one call per slot, without blocking; an empty round then waits
    CLUSTER_POLL_SECONDS (up to `block`) before returning (the simulator's reads: a development tool)."""
    names = list(streams)
    groups = group_by_slot(redis, names)
    if len(groups) > 1:
        replies: list[Any] = await asyncio.gather(
            *[
                redis.xreadgroup(group, consumer, {names[i]: streams[names[i]] for i in slot}, count=count)
                for slot in groups
            ]
        )
        reply: Any = [item for part in replies for item in (part or [])]
        if not reply and block:
            await asyncio.sleep(min(block / 1000, CLUSTER_POLL_SECONDS))
    else:
        reply = await redis.xreadgroup(group, consumer, streams, count=count, block=block)  # type: ignore[arg-type]
    if block is not None and reply and sum(len(entries) for _, entries in reply) < count:
        await asyncio.sleep(READ_LINGER)
    return [
        (stream, [(entry_id, fields) for entry_id, fields in entries if fields is not None])
        for stream, entries in (reply or [])
    ]


class ReadInFlight:
    """The blocking XREADGROUP a process has in flight, and the streams it names. A process that stops reading a
    stream (`disown`, a closed connection) calls `settle` before another process may take the stream over: Redis
    gives a new entry to the group's first blocked reader, so a read still naming the stream would take (and
    drop, pending) an entry the next reader, already past its replay of the pending ones, would never see."""

    def __init__(self) -> None:
        self._streams: frozenset[str] = frozenset()
        self._done: asyncio.Future[None] | None = None

    @contextlib.contextmanager
    def reading(self, streams: Iterable[str]) -> Iterator[None]:
        """Around one blocking read of `streams` (and the handing out of its entries)."""
        done = asyncio.get_running_loop().create_future()
        self._done, self._streams = done, frozenset(streams)
        try:
            yield
        finally:
            done.set_result(None)

    async def settle(self, streams: Iterable[str], timeout: float) -> None:
        """Return once the read in flight, if it names any of `streams`, has returned (bounded: a read stuck on
        a lost connection must not hold up a hand-over)."""
        done = self._done
        if done is not None and not done.done() and not self._streams.isdisjoint(streams):
            await asyncio.wait([done], timeout=timeout)
