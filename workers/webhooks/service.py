"""Webhook deliveries, run inside the worker process: fan-out, delivery lanes, relay.

Per store (leased like the message streams, `lease:webhooks:store-<id>`, a fair share per worker):
- **fan-out** (`dispatch`): the store's committed events after its stored position (`events` through
  `app.events.repository.committed_after`) become pending delivery rows of its subscribed webhooks, written in
  one transaction with the new position, so a crash repeats nothing and loses nothing; after the commit each
  delivery's trigger (a taskiq message for `webhooks.deliver`) goes on `webhooks:store-<id>`;
- **delivery**: the stream is read by `app.kit.streams` into `app.kit.lanes`, one lane per chain (webhook,
  conversation): a chain's deliveries are attempted oldest first, and a later one waits until the earlier one
  succeeded or was given up; other chains run concurrently. An entry is acknowledged after the outcome is
  written. A failed attempt schedules the next (exponential backoff with jitter, Retry-After honoured) and
  ends the run; the relay re-triggers it when due;
- **relay** (`sweep`): chains whose head is due and whose trigger is not on its way (a retry's time came; an
  entry lost with a Redis) go on the stream again.

Time comes from `clock` (tests move it: backoff, the retry window, the secret rotation's expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from redis.asyncio import Redis
from taskiq_redis import RedisStreamBroker

from app.config import Settings
from app.contracts import (
    WEBHOOK_TASK,
    WEBHOOKS_GROUP,
    store_events_channel,
    webhook_disabled_event,
    webhook_entry,
    webhooks_lease_key,
    webhooks_stream,
)
from app.events.repository import committed_after, position_of
from app.kit import metrics
from app.kit.batching import GroupCommit
from app.kit.db import AsyncSessionMaker, transaction
from app.kit.lanes import Key, Lanes, Retry, Unprocessable
from app.kit.leases import Leases, take_fair_share
from app.kit.loops import every, forever
from app.kit.redis import seed_url
from app.kit.streams import CONSUMER, StreamConsumer, StreamEntry
from app.models import DeliveryStatus, Webhook, WebhookDelivery
from app.webhooks.catalog import SOURCE_KINDS
from app.webhooks.fanout import fan_out
from app.webhooks.repository import DeliveryRef, FanoutRepository
from app.webhooks.signing import SecretBox
from app.webhooks.urls import Lookup
from workers.receiver import is_infrastructure_error
from workers.webhooks.repository import DeliveryWorkRepository, Outcome
from workers.webhooks.sender import Attempt, Sender

log = structlog.get_logger(__name__)

LIVE_KEY = "webhooks:live"
DISPATCH_BATCH = 1000
DISPATCH_IDLE_SECONDS = 0.05  # between fan-out rounds that found nothing
SWEEP_SECONDS = 1.0
FRESH_GRACE = timedelta(
    seconds=10
)  # a first attempt's trigger is given this long before the relay re-adds it
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 3600.0
CHAIN_CONCURRENCY = 256
HEADS_PER_READ = 8  # a chain's pending deliveries read at once (attempted one by one, oldest first)
AHEAD_MAX = 100_000


def backoff(attempts: int, rng: random.Random) -> float:
    """Seconds before the next attempt after `attempts` failed ones: 5 s doubling up to an hour, with jitter
    (between half and all of it, so that receivers coming back are not hit by every sender at once)."""
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(0, attempts - 1))
    return float(delay * (0.5 + rng.random() / 2))


class WebhookWorker:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: AsyncSessionMaker,
        redis: Redis,
        redis_url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        assert settings.secret_key, "webhook secrets need MOSTRADOR_SECRET_KEY"
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.clock = clock or (lambda: datetime.now(UTC))
        self.rng = rng or random.Random()
        self.window = timedelta(seconds=settings.webhooks_retry_window_seconds)
        self.box = SecretBox(settings.secret_key)
        owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.leases = Leases(redis, ttl_seconds=settings.worker_lease_ttl_seconds, owner=owner)
        self.streams = StreamConsumer(redis, WEBHOOKS_GROUP, webhooks_stream)
        # A taskiq broker for the task registry and the entries' format; its `listen` is never called.
        self.broker = RedisStreamBroker(
            seed_url(redis_url), consumer_group_name=WEBHOOKS_GROUP, consumer_name=CONSUMER
        )

        async def deliver(delivery_id: str, chain: str) -> None:
            await self.deliver_chain(delivery_id, chain)

        self.broker.register_task(deliver, task_name=WEBHOOK_TASK)
        self.sender = Sender(
            allow_private=settings.webhooks_allow_private_networks,
            connect_timeout=settings.webhooks_connect_timeout_seconds,
            timeout=settings.webhooks_timeout_seconds,
            per_receiver=settings.webhooks_max_per_receiver,
            lookup=lookup,
        )
        self.lanes: Lanes[StreamEntry] = Lanes(
            self._handle,
            concurrency=CHAIN_CONCURRENCY,
            buffer=1000,
            run_max=1,
            # Only the servers' errors are retried here (without counting): a receiver's failures are the
            # delivery rows' business (their backoff), and an entry that is not a task is dropped.
            retry=Retry(1, (), transient=is_infrastructure_error),
            done=self._ack,
            dead=self._drop_entry,
        )
        self.attempts = 0  # HTTP attempts made (tests, the bench)
        self._heads: GroupCommit[tuple[uuid.UUID, str], list[tuple[WebhookDelivery, Webhook]]] = GroupCommit(
            self._read_heads, max_batch=500
        )
        # Deliveries attempted ahead of their own trigger (a chain's earlier trigger reached them first).
        self._ahead: dict[str, bool] = {}
        self._records: GroupCommit[tuple[Webhook, WebhookDelivery, Outcome], str | None] = GroupCommit(
            self._write_records, max_batch=500
        )
        self.log = log.bind(webhooks=owner)

    # --- the service ---------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        loops = [
            asyncio.create_task(every(self.review, self.settings.worker_reconcile_seconds, self.log)),
            asyncio.create_task(every(self._renew, self.leases.renew_interval, self.log)),
            asyncio.create_task(every(self.sweep, SWEEP_SECONDS, self.log)),
            asyncio.create_task(every(self.trim, 30.0, self.log)),
            asyncio.create_task(forever(self._dispatch_forever, self.log)),
        ]
        reader = asyncio.create_task(forever(self._read, self.log))
        try:
            await stop.wait()
        finally:
            reader.cancel()
            loops[-1].cancel()
            await self.lanes.wait_idle(5.0)
            for task in loops:
                task.cancel()
            await asyncio.wait([reader, *loops], timeout=5)
            owned = list(self.streams.owned())
            with contextlib.suppress(Exception):
                await self.leases.release(*[webhooks_lease_key(s) for s in owned])
                await self.redis.zrem(LIVE_KEY, self.leases.token)
            self.lanes.close()
            self.streams.close()
            self._heads.close()
            self._records.close()
            await self.sender.aclose()

    async def review(self) -> None:
        async with transaction(self.sessionmaker) as session:
            store_ids = await DeliveryWorkRepository(session).store_ids()
        await take_fair_share(
            self.leases,
            LIVE_KEY,
            webhooks_lease_key,
            stores=store_ids,
            owned=self.streams.owned,
            take=self.streams.own,
            drop=self._drop,
        )

    async def _drop(self, store_id: uuid.UUID) -> None:
        self.streams.disown(store_id)
        self.lanes.drop_store(store_id)
        await self.streams.settle(store_id)  # no read of ours names the stream once the next owner replays it
        await self.leases.release(webhooks_lease_key(store_id))

    async def _renew(self) -> None:
        for store_id in await self.leases.renew_all(self.log):
            self.streams.disown(store_id)
            self.lanes.drop_store(store_id)

    async def trim(self) -> None:
        for store_id in self.streams.owned():
            await self.streams.trim(store_id)

    # --- fan-out -------------------------------------------------------------------------------------------
    async def _dispatch_forever(self) -> None:
        while True:
            if not await self.dispatch():
                await asyncio.sleep(DISPATCH_IDLE_SECONDS)

    async def dispatch(self) -> int:
        """One fan-out round for the owned stores; returns how many events it read."""
        store_ids = [s for s in self.streams.owned() if self.leases.holds(webhooks_lease_key(s))]
        if not store_ids:
            return 0
        now = self.clock()
        async with transaction(self.sessionmaker) as session:
            repository = FanoutRepository(session)
            positions = await repository.lock_positions(store_ids)
            if not positions:
                return 0
            # One read for every store, from the furthest behind; each store keeps only what is past its own
            # position. All stores' rows up to the last one read have been seen, so each may move up to it.
            events = await committed_after(
                session, list(positions), min(positions.values()), limit=DISPATCH_BATCH, kinds=SOURCE_KINDS
            )
            if not events:
                return 0
            fresh = [e for e in events if position_of(e) > positions[e.store_id]]
            webhooks = await repository.enabled_webhooks(list({e.store_id for e in fresh}))
            refs = await fan_out(session, fresh, webhooks, now=now, window=self.window)
            last = position_of(events[-1])
            await repository.save_positions({s: last for s, p in positions.items() if last > p})
        await self.trigger(refs)
        return len(events)

    async def trigger(self, refs: list[DeliveryRef]) -> None:
        """Put the deliveries' triggers on their stores' streams (after their rows committed). A lost one is
        re-added by the relay."""
        if not refs:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for ref in refs:
                    entry = webhook_entry(delivery_id=ref.id, chain=f"{ref.webhook_id}:{ref.order_key}")
                    pipe.xadd(webhooks_stream(ref.store_id), entry)  # type: ignore[arg-type]
                await pipe.execute()
        except Exception:
            self.log.warning(
                "queueing webhook deliveries failed; the relay will", count=len(refs), exc_info=True
            )

    async def sweep(self) -> int:
        """The relay: re-trigger chains whose head is due (retries; triggers lost). Returns how many."""
        owned = list(self.streams.owned())
        if not owned:
            return 0
        now = self.clock()
        async with transaction(self.sessionmaker) as session:
            due = await DeliveryWorkRepository(session).due_chains(
                owned, now=now, fresh_before=now - FRESH_GRACE
            )
        # A chain whose lane holds entries gets to its head anyway: re-adding it would only feed the lanes
        # redundant triggers (under a backlog, the sweep would add one per chain every round).
        refs = [DeliveryRef(d, s, w, k) for s, d, w, k in due if not self.lanes.holds((s, f"{w}:{k}"))]
        await self.trigger(refs)
        return len(refs)

    # --- delivery ------------------------------------------------------------------------------------------
    async def _read(self) -> None:
        async for batch in self.streams.batches():
            for entry in batch:
                try:
                    message = self.broker.formatter.loads(entry.fields.get("data", "").encode())
                    chain = str(message.kwargs["chain"])
                except Exception:
                    chain = f"?{entry.entry_id}"
                self.lanes.put((entry.store_id, chain), entry)
            await self.lanes.room()

    async def _handle(self, key: Key, run: list[StreamEntry]) -> None:
        for entry in run:
            try:
                message = self.broker.formatter.loads(entry.fields.get("data", "").encode())
            except Exception as exc:
                raise Unprocessable("not a task message") from exc
            task = self.broker.find_task(message.task_name)
            if task is None:
                raise Unprocessable(f"no task named {message.task_name!r}")
            await task.original_func(*message.args, **message.kwargs)

    async def _ack(self, _key: Key, run: list[StreamEntry]) -> None:
        await self.streams.ack_many(run)

    async def _drop_entry(self, _key: Key, entry: StreamEntry, error: BaseException) -> None:
        self.log.error(
            "dropping a webhook trigger that is not a task", entry_id=entry.entry_id, error=str(error)
        )

    async def deliver_chain(self, delivery_id: str, chain: str) -> None:
        """`webhooks.deliver`: attempt the chain's due deliveries, oldest first, until one must wait. The reads
        of chain heads and the writes of outcomes of all lanes are group-committed (one transaction each per
        round), and a read brings a chain's next few pending deliveries: a delivery costs its HTTP request and
        a share of two transactions. A read that came back short leaves nothing behind it: a delivery written
        after it has its own trigger, behind this one in the chain's lane. The trigger of a delivery attempted
        ahead of it (by its chain's earlier trigger) is acknowledged without a read."""
        if self._ahead.pop(delivery_id, False):
            return
        webhook_id_text, _, order_key = chain.partition(":")
        key = (uuid.UUID(webhook_id_text), order_key)
        while True:
            heads = await self._heads.submit(key)
            for delivery, webhook in heads:
                if not await self._deliver(delivery, webhook):
                    return
                if str(delivery.id) != delivery_id:
                    self._note_ahead(str(delivery.id))
            if len(heads) < HEADS_PER_READ:
                return

    def _note_ahead(self, delivery_id: str) -> None:
        self._ahead[delivery_id] = True
        if len(self._ahead) > AHEAD_MAX:
            del self._ahead[next(iter(self._ahead))]  # the oldest: its trigger was lost or is long past

    async def _deliver(self, delivery: WebhookDelivery, webhook: Webhook) -> bool:
        """Attempt a chain's head; True when the chain may go on to its next delivery."""
        now = self.clock()
        if delivery.next_attempt_at > now:
            return False  # a retry not due yet holds the chain; the relay triggers it when due
        if not webhook.enabled:
            async with transaction(self.sessionmaker) as session:
                await DeliveryWorkRepository(session).give_up_pending(webhook.id, "webhook disabled", now)
            return False
        attempt = await self._attempt(webhook, delivery, now)
        outcome = self._outcome(delivery, attempt)
        disabled = await self._records.submit((webhook, delivery, outcome))
        metrics.record_webhook_delivery(
            "succeeded"
            if outcome.status == DeliveryStatus.succeeded
            else "retried"
            if outcome.status == DeliveryStatus.pending
            else "failed"
        )
        if disabled:
            self.log.warning(
                "webhook disabled after failing for its whole retry window", webhook_id=str(webhook.id)
            )
            with contextlib.suppress(Exception):
                await self.redis.publish(
                    store_events_channel(webhook.store_id),
                    webhook_disabled_event(webhook.id, webhook.url, disabled),
                )
            return False
        return outcome.status != DeliveryStatus.pending

    async def _read_heads(
        self, chains: list[tuple[uuid.UUID, str]]
    ) -> list[list[tuple[WebhookDelivery, Webhook]]]:
        async with transaction(self.sessionmaker) as session:
            heads = await DeliveryWorkRepository(session).chain_heads(chains, per_chain=HEADS_PER_READ)
        return [heads.get(chain, []) for chain in chains]

    async def _attempt(self, webhook: Webhook, delivery: WebhookDelivery, now: datetime) -> Attempt:
        secrets_ = [self.box.decrypt(webhook.secret_encrypted)]
        if (
            webhook.previous_secret_encrypted
            and webhook.previous_secret_expires_at is not None
            and webhook.previous_secret_expires_at > now
        ):
            secrets_.append(self.box.decrypt(webhook.previous_secret_encrypted))
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
        self.attempts += 1
        return await self.sender.post(webhook.url, secrets=secrets_, msg_id=delivery.message_id, body=body)

    def _outcome(self, delivery: WebhookDelivery, attempt: Attempt) -> Outcome:
        if attempt.ok:
            return Outcome(DeliveryStatus.succeeded, attempt.status, attempt.latency_ms, None)
        delay = backoff(delivery.attempts + 1, self.rng)
        if attempt.retry_after is not None:
            delay = min(BACKOFF_MAX_SECONDS, max(delay, attempt.retry_after))
        next_at = self.clock() + timedelta(seconds=delay)
        if attempt.retryable and next_at < delivery.give_up_at:
            return Outcome(DeliveryStatus.pending, attempt.status, attempt.latency_ms, attempt.error, next_at)
        return Outcome(DeliveryStatus.failed, attempt.status, attempt.latency_ms, attempt.error)

    async def _write_records(self, items: list[tuple[Webhook, WebhookDelivery, Outcome]]) -> list[str | None]:
        """The outcomes of many lanes in one transaction; per item, the reason its webhook was just disabled
        (it failed for its whole window), or None."""
        now = self.clock()
        disabled: dict[uuid.UUID, str] = {}
        async with transaction(self.sessionmaker) as session:
            repository = DeliveryWorkRepository(session)
            await repository.record([(delivery, outcome) for _, delivery, outcome in items], now=now)
            # Every success clears its webhook's failure streak (one statement; the webhook read with a chain's
            # heads may predate a failure of an earlier delivery of that chain).
            healthy = {w.id for w, _, o in items if o.status == DeliveryStatus.succeeded}
            failing = {w.id: o.error for w, _, o in items if o.status != DeliveryStatus.succeeded}
            await repository.webhooks_succeeded(sorted(healthy - set(failing)))
            failing_since = await repository.webhooks_failed(sorted(failing), now)
            for webhook_id, error in sorted(failing.items()):
                since = failing_since.get(webhook_id)
                if since is not None and now - since >= self.window:
                    reason = f"every delivery failed for {self.window} (last error: {error})"[:1000]
                    if await repository.disable(webhook_id, reason, now):
                        disabled[webhook_id] = reason
        return [disabled.get(webhook.id) for webhook, _, _ in items]
