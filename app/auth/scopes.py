"""Every scope, in one place, and who holds which.

Users hold their role's scopes. An API key holds the scopes chosen when it was made, among `KEY_SCOPES`: a key
can never manage keys or members, so a leaked key cannot mint itself a successor.
"""

from __future__ import annotations

from enum import StrEnum

from app.models import UserRole


class Scope(StrEnum):
    stores_read = "stores:read"  # stores, their status, QR code, events, bot, orders, bookings
    stores_write = "stores:write"  # create stores, link and log out, pairing codes, bot configuration
    messages_read = "messages:read"  # conversations and messages
    messages_send = "messages:send"  # send messages (and, on the simulator, make customers send them)
    api_keys_read = "api_keys:read"
    api_keys_write = "api_keys:write"
    members_write = "members:write"  # invite users into the tenant, change their roles, remove them


KEY_SCOPES = frozenset({Scope.stores_read, Scope.stores_write, Scope.messages_read, Scope.messages_send})
READ_SCOPES = frozenset({Scope.stores_read, Scope.messages_read, Scope.api_keys_read})

ROLE_SCOPES: dict[UserRole, frozenset[Scope]] = {
    UserRole.owner: frozenset(Scope),
    UserRole.admin: frozenset(Scope),
    UserRole.viewer: READ_SCOPES,
}
