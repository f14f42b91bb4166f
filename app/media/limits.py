"""What WhatsApp accepts, per media type: MIME types and sizes (its published limits for business sends), and
a check of the first bytes against the declared type, so that a file is not sent as what it is not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MediaType = Literal["image", "video", "audio", "document"]
MEDIA_TYPES: tuple[MediaType, ...] = ("image", "video", "audio", "document")
MB = 1024 * 1024

IMAGE_MIMES = frozenset({"image/jpeg", "image/png"})
VIDEO_MIMES = frozenset({"video/mp4", "video/3gpp"})
AUDIO_MIMES = frozenset({"audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus"})
DOCUMENT_MIMES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/zip",
        "application/octet-stream",
    }
)


@dataclass(frozen=True)
class TypeLimit:
    mimes: frozenset[str]
    max_bytes: int


LIMITS: dict[MediaType, TypeLimit] = {
    "image": TypeLimit(IMAGE_MIMES, 5 * MB),
    "video": TypeLimit(VIDEO_MIMES, 16 * MB),
    "audio": TypeLimit(AUDIO_MIMES, 16 * MB),
    # A photo, a video or a recording may be sent as a document too (WhatsApp then leaves it uncompressed).
    "document": TypeLimit(DOCUMENT_MIMES | IMAGE_MIMES | VIDEO_MIMES | AUDIO_MIMES, 100 * MB),
}


def base_mime(content_type: str | None) -> str:
    """`audio/ogg; codecs=opus` -> `audio/ogg`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def type_for(mime: str) -> MediaType:
    """The media type a MIME type is sent as by default."""
    for kind in ("image", "video", "audio"):
        if mime in LIMITS[kind].mimes:
            return kind
    return "document"


def max_bytes(kind: MediaType, overall: int) -> int:
    return min(LIMITS[kind].max_bytes, overall)


def _is_mp4(head: bytes) -> bool:
    return head[4:8] == b"ftyp"


# The first bytes each MIME type's files start with (where the format has such a mark).
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
    "audio/ogg": (b"OggS",),
    "audio/opus": (b"OggS",),
    "audio/amr": (b"#!AMR",),
}


def content_matches(mime: str, head: bytes) -> bool:
    """False when the bytes are certainly not of the declared type (checked for the formats with a mark)."""
    if not head:
        return False
    if mime in _SIGNATURES:
        return head.startswith(_SIGNATURES[mime])
    if mime in {"video/mp4", "video/3gpp", "audio/mp4"}:
        return _is_mp4(head)
    return True
