"""The WhatsApp driver interface: what the session manager needs of a WhatsApp connection, and no more.

Two implementations: `neonize` (the real network, through whatsmeow) and `simulator` (an offline network whose
state lives in Redis). The manager creates one `Connection` per store it owns and receives that connection's
events through the `on_event` callback. A driver awaits `on_event` before it acknowledges an inbound message to
the network, so a message is durable (committed by the manager) before WhatsApp considers it delivered; if
`on_event` raises, the driver must not acknowledge, and the network delivers the message again later.
(neonize 0.5.2 cannot hold back whatsmeow's acknowledgement: see `sessions/drivers/neonize/runtime.py`.)
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True)
class QrCode:
    """A QR code to show the store's owner; it stops being scannable at `expires_at`."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class PairingCode:
    """The 8-character code to type on the phone (pairing by phone number instead of QR)."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Paired:
    """The phone accepted the pairing: `device_jid` (with its device number) resumes this device later."""

    device_jid: str
    phone: str


@dataclass(frozen=True)
class Connected:
    phone: str | None = None


@dataclass(frozen=True)
class Disconnected:
    """The connection dropped. `retryable`: reconnecting may work (network, server); otherwise it will not
    (the pairing window closed, the device was replaced) and the manager must say why and stop."""

    reason: str
    retryable: bool


@dataclass(frozen=True)
class LoggedOut:
    """The device was unlinked (from the phone, or by us): it cannot connect again without a new pairing."""

    reason: str


@dataclass(frozen=True)
class InboundMessage:
    wa_id: str
    chat_jid: str
    sender_jid: str
    timestamp: datetime
    type: str  # text | image | video | audio | document | sticker | location | contact | other
    text: str | None = None
    sender_name: str | None = None  # the customer's push name
    # mimetype, caption, size, ... (no bytes); downloadable media also has `fetch`: what the same driver's
    # `download_media` needs to get the bytes later (kept in the row until they are stored).
    media: dict[str, Any] | None = None
    is_group: bool = False
    from_me: bool = False
    # The chat's other identifier when WhatsApp gives both: the LID of a chat named by its phone JID above
    # (or the phone JID, should the chat be named by its LID). The manager keeps both on one conversation.
    chat_alt_jid: str | None = None


@dataclass(frozen=True)
class Inbound:
    message: InboundMessage


@dataclass(frozen=True)
class InboundBatch:
    """Several messages of one connection at once, in order (the simulator's way): saved together."""

    messages: list[InboundMessage]


ReceiptKind = Literal["delivered", "read", "played"]


@dataclass(frozen=True)
class Receipt:
    chat_jid: str
    ids: list[str] = field(default_factory=list)
    kind: ReceiptKind = "delivered"


Event = (
    QrCode | PairingCode | Paired | Connected | Disconnected | LoggedOut | Inbound | InboundBatch | Receipt
)
EventCallback = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class OutboundMedia:
    """Media to send: the file's bytes and how to present them."""

    type: str  # image | video | audio | document
    data: bytes
    mime: str
    caption: str | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class SentMessage:
    wa_id: str
    timestamp: datetime


class DriverError(Exception):
    """A driver operation failed; `retryable` says whether trying again later may work."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Connection(ABC):
    """One store's WhatsApp connection."""

    @abstractmethod
    async def start(self, *, device_jid: str | None) -> None:
        """Connect. Without `device_jid`, start a fresh pairing (QR codes follow as events); with it, resume
        exactly that device. Returns once the attempt is under way; the outcome arrives as events."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect, keeping the device linked. Idempotent."""

    @abstractmethod
    async def logout(self) -> None:
        """Unlink the device from the phone and forget it. Idempotent."""

    @abstractmethod
    async def request_pairing_code(self, phone: str) -> PairingCode:
        """During a pairing, ask for a code to type on the phone instead of scanning the QR."""

    @abstractmethod
    async def send_text(self, chat_jid: str, text: str, *, wa_id: str | None = None) -> SentMessage:
        """Send a text. `wa_id` lets the caller choose the message id before sending (it is recorded first)."""

    @abstractmethod
    async def send_media(
        self, chat_jid: str, media: OutboundMedia, *, wa_id: str | None = None
    ) -> SentMessage:
        """Upload and send an image, video, audio or document (`wa_id` as for `send_text`)."""

    @abstractmethod
    async def download_media(self, kind: str, fetch: dict[str, Any]) -> bytes:
        """The bytes of an inbound message's media, from the `fetch` its InboundMessage carried. Raises
        DriverError (retryable: try again later; not: the media is gone, e.g. expired on WhatsApp's servers)."""

    @abstractmethod
    async def set_typing(self, chat_jid: str, typing: bool) -> None: ...


class Driver(ABC):
    """Creates connections; one per process, shared by every store the process owns."""

    name: str

    @abstractmethod
    def connection(self, store_id: uuid.UUID, on_event: EventCallback) -> Connection: ...

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Process-wide set-up (before the first connection)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Process-wide tear-down (after every connection stopped)."""

    @abstractmethod
    def new_message_id(self) -> str:
        """A fresh WhatsApp message id, to record before sending."""
