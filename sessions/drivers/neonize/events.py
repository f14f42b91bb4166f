"""neonize's protobuf events as the driver's events: messages, receipts, pairing, logouts, bans, connect errors.

Pure functions, no client and no event loop: the connection's handlers call them and emit what they return.
What neonize's encoder sends (read from its Go side):

- `MessageInfo.Timestamp` arrives in milliseconds (`UnixMilli()` in neonize's encoder; older builds sent
  seconds, which `epoch_to_datetime` also accepts); `SendResponse.Timestamp` is in seconds.
- `PairStatusEv.ID` is the device JID to persist (with its device number). `ReceiptEv.Type` is a required
  field with a default: check `HasField("Type")` before reading it.
- WhatsApp addresses many chats by LID (an opaque id) and gives the phone-number JID beside it
  (`SenderAlt`, `RecipientAlt`): the phone number wins, so one customer stays one conversation.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from neonize.proto import Neonize_pb2 as pb
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
from neonize.utils.jid import Jid2String

from app.contracts import REASON_TEMPORARY_BAN, jid_to_phone
from sessions.drivers.base import Disconnected, InboundMessage, LoggedOut, Paired, Receipt, ReceiptKind

USER_SERVER = "s.whatsapp.net"
LID_SERVER = "lid"
# Chats that are never a customer conversation: status updates and broadcast lists, channels.
IGNORED_SERVERS = frozenset({"broadcast", "newsletter"})


def epoch_to_datetime(value: int) -> datetime:
    """neonize's timestamps: milliseconds for messages, seconds elsewhere (and in older builds); 0 is unset.
    Any value past 1e11 is taken as milliseconds (1e11 seconds is the year 5138)."""
    if value <= 0:
        return datetime.now(UTC)
    seconds = value / 1000 if value > 100_000_000_000 else float(value)
    return datetime.fromtimestamp(seconds, UTC)


def jid_from_string(value: str) -> Any:
    """`5491155550000@s.whatsapp.net`, `5491155550000:12@s.whatsapp.net` or bare digits -> neonize's JID."""
    user, sep, server = value.strip().partition("@")
    if not sep:
        user, server = "".join(ch for ch in user if ch.isdigit()), USER_SERVER
    agent = device = 0
    if ":" in user:
        user, _, raw_device = user.partition(":")
        if "." in user:
            user, _, raw_agent = user.partition(".")
            agent = int(raw_agent)
        device = int(raw_device)
    if not user or not server:
        raise ValueError(f"not a WhatsApp JID: {value!r}")
    return pb.JID(User=user, RawAgent=agent, Device=device, Integrator=0, Server=server, IsEmpty=False)


def _bare(jid: Any) -> str:
    """`user@server` without agent or device."""
    return f"{jid.User}@{jid.Server}" if jid.User else str(jid.Server)


def _is_set(jid: Any) -> bool:
    return bool(jid.User) and not jid.IsEmpty


def _prefer_phone(jid: Any, alternative: Any) -> Any:
    """WhatsApp addresses many chats by LID (an opaque id) and gives the phone-number JID beside it: the
    phone number is what a store knows its customers by, so it wins when present."""
    if jid.Server == LID_SERVER and _is_set(alternative) and alternative.Server == USER_SERVER:
        return alternative
    return jid


def _chat_identities(source: Any) -> tuple[Any, Any | None]:
    """A one-to-one chat's JID (the phone number where known) and its other identifier (the LID) when WhatsApp
    gave both. The chat's alternative is the sender's (`SenderAlt`) when the customer wrote, the recipient's
    (`RecipientAlt`) for our own messages sent from the phone; whatsmeow fills them from its LID map."""
    chat = source.Chat
    if source.IsGroup:
        return chat, None
    if source.IsFromMe:
        alternative = source.RecipientAlt
    elif chat.User == source.Sender.User and chat.Server == source.Sender.Server:
        alternative = source.SenderAlt
    else:
        return chat, None
    if not _is_set(alternative) or alternative.Server == chat.Server:
        return chat, None
    if chat.Server == LID_SERVER and alternative.Server == USER_SERVER:
        return alternative, chat  # named by LID, the number known: the number names it
    if chat.Server == USER_SERVER and alternative.Server == LID_SERVER:
        return chat, alternative
    return chat, None


def _field(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _media(message: Any, **fields: str) -> dict[str, Any]:
    """The fields of a media message that are set, renamed (`fileLength` -> `size`, ...)."""
    return {key: getattr(message, name) for key, name in fields.items() if message.HasField(name)}


def _downloadable(field: str, message: Any, media: dict[str, Any]) -> dict[str, Any]:
    """Add the download reference (`fetch`): the media sub-message itself, serialized, which is what
    `download_any` needs (direct path, media key, hashes). Kept in the row only until the bytes are stored."""
    if message.HasField("directPath") or message.HasField("URL"):
        media["fetch"] = {"field": field, "proto": base64.b64encode(message.SerializeToString()).decode()}
    return media


def message_to_download(fetch: dict[str, Any]) -> Any:
    """The WhatsApp message to hand to neonize's `download_any` for a stored `fetch` reference."""
    field, proto = fetch.get("field"), fetch.get("proto")
    if field not in DOWNLOADABLE or not isinstance(proto, str):
        raise ValueError("not a neonize media reference")
    message = e2e.Message()
    getattr(message, str(field)).ParseFromString(base64.b64decode(proto))
    return message


DOWNLOADABLE = frozenset(
    {"imageMessage", "videoMessage", "ptvMessage", "audioMessage", "documentMessage", "stickerMessage"}
)


_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
)
# Content that is protocol plumbing, not something a customer said.
_PLUMBING = frozenset(
    {
        "protocolMessage",
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
        "messageContextInfo",
        "deviceSentMessage",
        "keepInChatMessage",
        "encReactionMessage",
        "pollUpdateMessage",
        "pinInChatMessage",
    }
)


def _unwrap(message: Any) -> Any:
    for _ in range(3):  # whatsmeow already unwraps; stay safe with nested wrappers it may not know
        for name in _WRAPPERS:
            if message.HasField(name) and getattr(message, name).HasField("message"):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def classify_content(message: Any) -> tuple[str, str | None, dict[str, Any] | None] | None:
    """(type, text, media metadata) of a WhatsApp message, or None for protocol plumbing."""
    message = _unwrap(message)
    if message.HasField("conversation"):
        return "text", message.conversation, None
    if message.HasField("extendedTextMessage"):
        return "text", message.extendedTextMessage.text, None
    if message.HasField("imageMessage"):
        m = message.imageMessage
        media = _media(
            m, mimetype="mimetype", caption="caption", size="fileLength", width="width", height="height"
        )
        return "image", _field(m, "caption"), _downloadable("imageMessage", m, media)
    for name in ("videoMessage", "ptvMessage"):
        if message.HasField(name):
            m = getattr(message, name)
            media = _media(
                m,
                mimetype="mimetype",
                caption="caption",
                size="fileLength",
                seconds="seconds",
                gif="gifPlayback",
            )
            if name == "ptvMessage":
                media["video_note"] = True
            return "video", _field(m, "caption"), _downloadable(name, m, media)
    if message.HasField("audioMessage"):
        m = message.audioMessage
        media = _media(m, mimetype="mimetype", size="fileLength", seconds="seconds", voice_note="PTT")
        return "audio", None, _downloadable("audioMessage", m, media)
    if message.HasField("documentMessage"):
        m = message.documentMessage
        media = _media(
            m, mimetype="mimetype", caption="caption", size="fileLength", file_name="fileName", title="title"
        )
        return "document", _field(m, "caption"), _downloadable("documentMessage", m, media)
    if message.HasField("stickerMessage"):
        m = message.stickerMessage
        media = _media(m, mimetype="mimetype", size="fileLength", animated="isAnimated")
        return "sticker", None, _downloadable("stickerMessage", m, media)
    if message.HasField("locationMessage"):
        m = message.locationMessage
        media = _media(
            m, latitude="degreesLatitude", longitude="degreesLongitude", name="name", address="address"
        )
        return "location", None, media
    if message.HasField("liveLocationMessage"):
        m = message.liveLocationMessage
        media = _media(m, latitude="degreesLatitude", longitude="degreesLongitude", caption="caption")
        media["live"] = True
        return "location", _field(m, "caption"), media
    if message.HasField("contactMessage"):
        m = message.contactMessage
        return "contact", None, _media(m, display_name="displayName", vcard="vcard")
    if message.HasField("contactsArrayMessage"):
        m = message.contactsArrayMessage
        contacts = [_media(c, display_name="displayName", vcard="vcard") for c in m.contacts]
        return "contact", None, {**_media(m, display_name="displayName"), "contacts": contacts}
    kinds = [descriptor.name for descriptor, _value in message.ListFields()]
    content = [kind for kind in kinds if kind not in _PLUMBING]
    if not content:
        return None
    return "other", None, {"kind": content[0]}


def inbound_from_event(ev: Any, *, group_messages: bool, own_messages: bool) -> InboundMessage | None:
    """A neonize `MessageEv` as the manager's InboundMessage; None when it is filtered out or not a message."""
    info = ev.Info
    source = info.MessageSource
    if source.Chat.Server in IGNORED_SERVERS:
        return None
    if source.IsGroup and not group_messages:
        return None
    if source.IsFromMe and not own_messages:
        return None
    if not ev.HasField("Message"):
        return None  # an "unavailable" placeholder: whatsmeow asks the phone and delivers the real one later
    content = classify_content(ev.Message)
    if content is None:
        return None
    kind, text, media = content
    sender = _prefer_phone(source.Sender, source.SenderAlt)
    chat, chat_alt = _chat_identities(source)
    return InboundMessage(
        wa_id=info.ID,
        chat_jid=_bare(chat),
        chat_alt_jid=_bare(chat_alt) if chat_alt is not None else None,
        sender_jid=_bare(sender),
        timestamp=epoch_to_datetime(info.Timestamp),
        type=kind,
        text=text or None,
        sender_name=info.Pushname or None,
        media=media or None,
        is_group=source.IsGroup,
        from_me=source.IsFromMe,
    )


_RECEIPT_KINDS: dict[int, ReceiptKind] = {
    pb.Receipt.DELIVERED: "delivered",
    pb.Receipt.READ: "read",
    pb.Receipt.PLAYED: "played",
}


def receipt_from_event(ev: Any) -> Receipt | None:
    """Delivered/read/played receipts of messages we sent; other receipt types (our own devices' read
    receipts, retries, server errors...) are not the manager's business. `Type` is a required field with a
    default, so an unset type would read as DELIVERED: check it is actually there."""
    if not ev.HasField("Type"):
        return None
    kind = _RECEIPT_KINDS.get(ev.Type)
    if kind is None or not ev.MessageIDs:
        return None
    source = ev.MessageSource
    chat = _prefer_phone(source.Chat, source.SenderAlt) if not source.IsGroup else source.Chat
    return Receipt(chat_jid=_bare(chat), ids=list(ev.MessageIDs), kind=kind)


def paired_from_event(ev: Any) -> Paired | Disconnected:
    if ev.HasField("Status") and ev.Status == pb.PairStatus.SUCCESS and _is_set(ev.ID):
        device_jid = Jid2String(ev.ID)  # with its device number: what resumes this device later
        return Paired(device_jid=device_jid, phone=jid_to_phone(device_jid))
    error = ev.Error if ev.HasField("Error") and ev.Error else "unknown error"
    return Disconnected(f"pairing failed: {error}", retryable=False)


_LOGOUT_REASONS = {
    pb.LOGGED_OUT: "the device was unlinked from the phone",
    pb.MAIN_DEVICE_GONE: "the phone's WhatsApp account is gone (reinstalled or deleted)",
    pb.UNKNOWN_LOGOUT: "WhatsApp logged out this device",
}


def logged_out_from_event(ev: Any) -> LoggedOut:
    reason = (
        _LOGOUT_REASONS.get(ev.Reason) if ev.HasField("Reason") else None
    ) or "WhatsApp logged out this device"
    if ev.HasField("OnConnect") and ev.OnConnect:
        reason += " (found on connect)"
    return LoggedOut(reason)


def disconnected_from_temporary_ban(ev: Any) -> Disconnected:
    code = (
        pb.TemporaryBan.TempBanReason.Name(ev.Code) if ev.HasField("Code") and ev.Code else "unknown reason"
    )
    expire = f", lifted in {timedelta(seconds=ev.Expire)}" if ev.HasField("Expire") and ev.Expire > 0 else ""
    return Disconnected(f"{REASON_TEMPORARY_BAN} ({code}{expire})", retryable=False)


def describe_connect_error(message: str) -> str:
    """A failed connect in words an operator can act on (the raw error follows)."""
    low = message.lower()
    if "no such host" in low or "server misbehaving" in low or "temporary failure in name resolution" in low:
        return f"cannot reach WhatsApp: DNS lookup failed (is this server offline?): {message}"
    if any(s in low for s in ("connection refused", "unreachable", "timeout", "timed out", "reset by peer")):
        return f"cannot reach WhatsApp: network error: {message}"
    if any(s in low for s in ("database", "pq:", "sql", "postgres")):
        return f"the WhatsApp auth store (PostgreSQL) failed: {message}"
    return f"connecting to WhatsApp failed: {message}"
