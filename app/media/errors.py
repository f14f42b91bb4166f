from __future__ import annotations

from app.kit.errors import MostradorError, NotFound


class MediaTooLarge(MostradorError):
    status_code = 413
    code = "media_too_large"


class UnsupportedMediaType(MostradorError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidMedia(MostradorError):
    status_code = 422
    code = "invalid_media"


class MediaUrlRefused(MostradorError):
    """A `media.url` that may not be fetched (scheme, private address) or could not be (unreachable, error)."""

    status_code = 422
    code = "media_url_refused"


class UploadNotFound(NotFound):
    code = "upload_not_found"


class MediaNotAvailable(NotFound):
    code = "media_not_found"


class MediaExpired(MostradorError):
    status_code = 410
    code = "media_expired"


class RangeNotSatisfiable(MostradorError):
    status_code = 416
    code = "range_not_satisfiable"
