from __future__ import annotations

from app.kit.errors import Conflict, MostradorError, NotFound


class WebhookError(MostradorError):
    """Base of the webhooks domain's errors."""


class WebhookNotFound(WebhookError, NotFound):
    code = "webhook_not_found"

    def __init__(self, webhook_id: str) -> None:
        # The same body for an unknown id, a malformed one and another tenant's webhook.
        super().__init__("webhook not found", details={"webhook_id": webhook_id})


class DeliveryNotFound(WebhookError, NotFound):
    code = "delivery_not_found"

    def __init__(self, delivery_id: str) -> None:
        super().__init__("delivery not found", details={"delivery_id": delivery_id})


class UnsafeWebhookUrl(WebhookError):
    status_code = 422
    code = "unsafe_url"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"this URL cannot receive webhooks: {reason}", details={"url": url, "reason": reason}
        )


class WebhookDisabled(WebhookError, Conflict):
    code = "webhook_disabled"

    def __init__(self, webhook_id: str) -> None:
        super().__init__(
            "the webhook is disabled: enable it first (PATCH enabled=true)",
            details={"webhook_id": webhook_id},
        )


class ReplayTooLarge(WebhookError):
    status_code = 422
    code = "replay_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the window holds more than {limit} events: replay it in smaller windows",
            details={"limit": limit},
        )
