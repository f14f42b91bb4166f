"""Settings for every Mostrador process, from the environment (12-factor).

`DATABASE_URL` and `REDIS_URL` keep their usual unprefixed names; everything else is `MOSTRADOR_*`.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets shorter than this are refused in production: 32 url-safe characters carry ~190 bits.
MIN_SECRET_LENGTH = 32
WEAK_SECRETS = frozenset({"secret", "changeme", "change-me", "development", "dev", "mostrador"})


class Environment(StrEnum):
    development = "development"
    testing = "testing"
    production = "production"


class WhatsAppDriver(StrEnum):
    neonize = "neonize"
    simulator = "simulator"


class LogLevel(StrEnum):
    debug = "DEBUG"
    info = "INFO"
    warning = "WARNING"
    error = "ERROR"


class SettingsError(ValueError):
    """A configuration that must not start; the message tells the operator what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOSTRADOR_", extra="ignore", use_enum_values=False)

    env: Environment = Field(
        Environment.development,
        description="`development` (readable logs, generated secret allowed), `testing`, or `production` "
        "(JSON logs, a strong MOSTRADOR_SECRET_KEY is required).",
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "MOSTRADOR_DATABASE_URL"),
        description="PostgreSQL URL (`postgresql://user:pass@host:5432/db`). Unset: `mostrador run` starts an "
        "embedded PostgreSQL under the data dir; the other commands refuse to start.",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "MOSTRADOR_REDIS_URL"),
        description="Redis URL (`redis://host:6379/0`), Redis 7 recommended; a Redis Cluster as "
        "`redis+cluster://host:port[,host:port...]` (`rediss+cluster://` with TLS). Unset: `mostrador run` starts an "
        "embedded Redis (AOF on) under the data dir.",
    )
    secret_key: str | None = Field(
        None,
        description="Key for signing sessions and encrypting stored secrets (webhook secrets). Required and at "
        f"least {MIN_SECRET_LENGTH} characters in production; in development a random one is generated once "
        "and kept in `<data dir>/secret_key`.",
    )
    whatsapp_driver: WhatsAppDriver = Field(
        WhatsAppDriver.neonize,
        description="`neonize` connects to the real WhatsApp network; `simulator` is an offline WhatsApp "
        "network for development, demos, tests and load tests (and enables the `/v1/sim` endpoints).",
    )
    log_level: LogLevel = Field(LogLevel.info, description="Minimum level of log lines written to stderr.")
    host: str = Field("127.0.0.1", description="Address the API listens on (`0.0.0.0` in a container).")
    port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    data_dir: Path = Field(
        Path(".mostrador"),
        description="Directory for embedded PostgreSQL/Redis data and the generated development secret.",
    )

    # Operations: metrics, probes, shutdown (docs/architecture.md "Observe")
    ops_host: str = Field(
        "127.0.0.1",
        description="Session manager and worker: address of the small HTTP listener with `/metrics`, `/healthz` "
        "and `/readyz` (`0.0.0.0` in a container). The API serves the same paths on its own port.",
    )
    ops_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="Session manager and worker: port of that listener (0: none). `mostrador run` gives it to "
        "its session manager and the next port to its worker.",
    )
    shutdown_grace_seconds: float = Field(
        20,
        gt=0,
        description="On SIGTERM, how long each process may take to finish the work in flight (requests, "
        "handlers, sends) before it stops anyway, releases its leases and exits 0.",
    )

    # Accounts
    access_token_ttl_seconds: int = Field(
        900,
        ge=30,
        le=86400,
        description="Lifetime of an access token (JWT) from sign-up or login. Short on purpose: a stolen "
        "token works until it expires (or until its user logs out or changes the password).",
    )
    session_ttl_seconds: int = Field(
        8 * 3600,
        ge=60,
        le=30 * 86400,
        description="Lifetime of the web page's session cookie (a login with `cookie: true`).",
    )
    api_key_last_used_resolution_seconds: float = Field(
        60,
        ge=0,
        description="An API key's `last_used_at` is written at most this often, not on every request.",
    )
    login_limit_per_ip: int = Field(
        30, ge=1, description="Login attempts allowed from one client IP per window, then 429."
    )
    login_limit_per_account: int = Field(
        10, ge=1, description="Login attempts allowed for one email per window, then 429."
    )
    login_limit_window_seconds: int = Field(
        300, ge=1, description="The login rate limit's fixed window, in seconds."
    )

    # Changes feed
    changes_poll_interval_ms: int = Field(
        150,
        ge=10,
        le=5000,
        description="Changes feed long-poll: how often the API process's one poller asks PostgreSQL whether "
        "a waiting reader's store has news (one indexed query per tick, only while someone waits); the most "
        "a long-poll answer lags behind a commit.",
    )

    # Sign-in with an OpenID Connect provider (Google, Microsoft, Keycloak...): on when issuer and client id are set.
    oidc_issuer: str | None = Field(
        None,
        description="OIDC: the provider's issuer URL; its `/.well-known/openid-configuration` is read at sign-in.",
    )
    oidc_client_id: str | None = Field(
        None, description="OIDC: this application's client id at the provider."
    )
    oidc_client_secret: str | None = Field(None, description="OIDC: the client secret (confidential client).")
    oidc_redirect_url: str | None = Field(
        None,
        description="OIDC: the callback URL registered at the provider (default: this API's "
        "`/v1/auth/oidc/callback` as the request reached it; set it behind a proxy).",
    )

    # Sending through the API (POST /v1/stores/{id}/messages)
    idempotency_key_hours: int = Field(
        24,
        ge=24,
        description="Sending: how long an `Idempotency-Key` is remembered per store (at least 24 hours); the same "
        "key within it returns the message the first request made.",
    )

    # Session manager
    sessions_max_stores: int = Field(
        500,
        ge=1,
        description="Session manager: most stores one process holds (whatsmeow's limits, docs/architecture.md).",
    )
    sessions_lease_ttl_seconds: float = Field(
        10,
        gt=0,
        description="Session manager: a store's lease lifetime; a dead manager's stores move after it.",
    )
    sessions_reconcile_seconds: float = Field(
        2,
        gt=0,
        description="Session manager: how often held and known stores are reviewed without reading PostgreSQL "
        "(heartbeat, stores whose manager died, sessions left without a connection). A store the API changes is "
        "reconciled at once.",
    )
    sessions_full_reconcile_seconds: float = Field(
        30,
        gt=0,
        description="Session manager: how often every store's desired state is read again and compared with live "
        "connections (catches a change whose notification was lost).",
    )
    sessions_reconnect_base_seconds: float = Field(
        1, gt=0, description="Session manager: first reconnect delay; doubles per failure, with jitter."
    )
    sessions_reconnect_max_seconds: float = Field(
        60, gt=0, description="Session manager: reconnect delay cap."
    )

    # Worker
    worker_concurrency: int = Field(
        64, ge=1, description="Worker: messages handled at once across all chats (one at a time per chat)."
    )
    worker_chat_buffer: int = Field(
        1000, ge=1, description="Worker: entries buffered for one chat before reading pauses (backpressure)."
    )
    worker_max_attempts: int = Field(
        3,
        ge=1,
        description="Worker: tries of a failing message before it goes to the store's dead-letter stream.",
    )
    worker_lease_ttl_seconds: float = Field(10, gt=0, description="Worker: a store stream's lease lifetime.")
    worker_reconcile_seconds: float = Field(
        2, gt=0, description="Worker: how often owned stores are reviewed."
    )
    worker_sweep_after_seconds: float = Field(
        60,
        gt=0,
        description="Worker: inbound rows still `queued` (and replies still `pending`) this long are queued "
        "again, so that a Redis that lost its data loses no message.",
    )

    # Media (app/media): files of inbound and sent messages, and uploads.
    media_s3_bucket: str | None = Field(
        None,
        description="Media: an S3 bucket to keep media in. Unset: local files under `<data dir>/media`. With it, "
        "the other `MOSTRADOR_MEDIA_S3_*` settings apply (any S3-compatible server: AWS, MinIO, R2, ...).",
    )
    media_s3_endpoint_url: str | None = Field(
        None, description="Media: the S3 endpoint URL (unset: AWS's own for the region)."
    )
    media_s3_region: str | None = Field(None, description="Media: the S3 region (`us-east-1`, `auto`, ...).")
    media_s3_access_key_id: str | None = Field(
        None, description="Media: S3 access key id (unset: boto3's usual credential chain)."
    )
    media_s3_secret_access_key: str | None = Field(None, description="Media: S3 secret access key.")
    media_s3_prefix: str = Field("", description="Media: a prefix for every object key in the bucket.")
    media_max_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1,
        description="Media: the largest upload or fetched URL accepted, whatever its type (WhatsApp's own limits "
        "per type apply below it: image 5 MB, audio and video 16 MB, document 100 MB).",
    )
    media_fetch_timeout_seconds: float = Field(
        15, gt=0, description="Media: time allowed to fetch a `media.url` given to a send, all of it."
    )
    media_fetch_allow_private: bool = Field(
        False,
        description="Media: allow `media.url` to reach private, loopback and link-local addresses (off: such "
        "URLs are refused, so a send cannot probe the internal network). For development and tests only.",
    )
    media_upload_ttl_hours: float = Field(
        24, gt=0, description="Media: how long an upload can be sent; then the retention job deletes it."
    )
    media_download_attempts: int = Field(
        5, ge=1, description="Session manager: tries to download an inbound message's media before `failed`."
    )
    media_download_concurrency: int = Field(
        8, ge=1, description="Session manager: inbound media downloads at once (per process)."
    )
    media_retention_check_seconds: float = Field(
        3600, gt=0, description="Worker: how often the media retention job runs (one worker at a time)."
    )
    # Webhooks (app/webhooks, workers/webhooks)
    webhooks_allow_private_networks: bool = Field(
        False,
        description="Webhooks: let webhook URLs reach loopback, private, link-local and metadata addresses "
        "(refused by default, at creation and after DNS resolution at every delivery). For tests and for "
        "operators whose receivers live on a private network.",
    )
    webhooks_connect_timeout_seconds: float = Field(
        3, gt=0, description="Webhooks: connecting to a receiver (each attempt)."
    )
    webhooks_timeout_seconds: float = Field(
        10, gt=0, description="Webhooks: a whole delivery attempt, answer included; a timeout is retried."
    )
    webhooks_max_per_receiver: int = Field(
        8, ge=1, description="Webhooks: deliveries in flight at once to one receiver (host and port)."
    )
    webhooks_retry_window_seconds: float = Field(
        24 * 3600,
        gt=0,
        description="Webhooks: a delivery is retried (exponential backoff with jitter) this long, then given "
        "up; a webhook that failed for this long without a success is disabled.",
    )

    # The simulator's network: pairing windows like WhatsApp's, shortened by tests.
    sim_redis_url: str | None = Field(
        None,
        description="Simulator: Redis holding the simulated WhatsApp network (default: REDIS_URL). A separate one "
        "lets tests wipe our Redis while the 'network' keeps its queued messages, as WhatsApp would.",
    )
    sim_qr_first_seconds: float = Field(60, gt=0, description="Simulator: lifetime of the first QR code.")
    sim_qr_next_seconds: float = Field(20, gt=0, description="Simulator: lifetime of each following QR code.")
    sim_qr_count: int = Field(6, ge=1, description="Simulator: QR codes shown before the pairing times out.")
    sim_receipt_delay_ms: int = Field(
        500, ge=0, description="Simulator: delay before a sent message is reported delivered, then read."
    )
    sim_receipts: bool = Field(
        True, description="Simulator: report sent messages delivered, then read (off in benchmarks)."
    )

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if self.env is Environment.production:
            if not self.secret_key:
                raise SettingsError(
                    "MOSTRADOR_SECRET_KEY is required when MOSTRADOR_ENV=production; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
            if len(self.secret_key) < MIN_SECRET_LENGTH or self.secret_key.lower() in WEAK_SECRETS:
                raise SettingsError(
                    f"MOSTRADOR_SECRET_KEY is too weak for production: use at least {MIN_SECRET_LENGTH} random "
                    "characters (`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
                )
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def is_production(self) -> bool:
        return self.env is Environment.production

    def with_dev_secret(self) -> Settings:
        """Outside production, fill a missing secret with one generated once and kept in the data dir."""
        if self.secret_key or self.is_production:
            return self
        path = self.data_dir / "secret_key"
        if path.exists():
            secret = path.read_text().strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            secret = secrets.token_urlsafe(48)
            path.touch(mode=0o600)
            path.write_text(secret + "\n")
        return self.model_copy(update={"secret_key": secret})

    def require_urls(self) -> tuple[str, str]:
        """The process commands other than `run` need both servers given to them."""
        missing = [
            name
            for name, value in (("DATABASE_URL", self.database_url), ("REDIS_URL", self.redis_url))
            if not value
        ]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} must be set for this command (only `mostrador run` starts embedded "
                "servers)"
            )
        assert self.database_url and self.redis_url
        return self.database_url, self.redis_url


def describe_error(exc: ValueError) -> str:
    """One line per problem, without pydantic's URLs, for the operator reading a failed start."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            (f"{'.'.join(str(p) for p in err['loc'])}: " if err["loc"] else "")
            + str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
    return str(exc)


@lru_cache
def get_settings() -> Settings:
    return Settings()
