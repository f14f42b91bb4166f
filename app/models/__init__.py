"""Every table, imported here so that Alembic's autogenerate sees the whole schema."""

from app.models.base import Base
from app.models.booking import Booking, BookingStatus
from app.models.event import Event, EventKind
from app.models.idempotency import IdempotencyKey
from app.models.message import Conversation, Direction, Message, MessageStatus
from app.models.onboarding import OnboardingLink
from app.models.order import Order, OrderCounter
from app.models.store import DesiredState, Store, StoreStatus
from app.models.tenant import ApiKey, Invite, Tenant, User, UserRole
from app.models.upload import Upload
from app.models.webhook import DeliveryStatus, Webhook, WebhookDelivery, WebhookDispatchPosition

__all__ = [
    "ApiKey",
    "Base",
    "Booking",
    "BookingStatus",
    "Conversation",
    "DeliveryStatus",
    "DesiredState",
    "Direction",
    "Event",
    "EventKind",
    "IdempotencyKey",
    "Invite",
    "Message",
    "MessageStatus",
    "OnboardingLink",
    "Order",
    "OrderCounter",
    "Store",
    "StoreStatus",
    "Tenant",
    "Upload",
    "User",
    "UserRole",
    "Webhook",
    "WebhookDelivery",
    "WebhookDispatchPosition",
]
