"""The worker's taskiq broker: the task registry and the producer (`kick`), not the consumer.

The store streams (`messages:store-<id>`) stay Taskiq streams: an entry is a taskiq message in a `data` field,
the way taskiq-redis's `RedisStreamBroker` writes it (`app.contracts.inbound_entry` writes the same), routed
with the `queue_name` label. Consuming them is not taskiq's: stock taskiq-redis (1.2.4, pinned) keeps start
order but not completion order, reclaims a dead consumer's entries only after a read returned something, and
creates groups only at its start-up (docs/architecture.md). The worker reads with `app.kit.streams` and runs the
tasks found here in per-chat lanes (`app.kit.lanes`, `workers.receiver`).
"""

from __future__ import annotations

from taskiq_redis import RedisStreamBroker

from app.contracts import MESSAGES_GROUP
from app.kit.redis import seed_url
from app.kit.streams import CONSUMER


def store_broker(redis_url: str) -> RedisStreamBroker:
    """A broker for `register_task`, `find_task`, its formatter and `kick`; its `listen` is never called and it
    needs no `startup` (which would create a group on taskiq's default stream, read by nobody). It never connects,
    so on a Redis Cluster it is given the first seed node's plain URL (its pool only needs to parse it)."""
    return RedisStreamBroker(seed_url(redis_url), consumer_group_name=MESSAGES_GROUP, consumer_name=CONSUMER)
