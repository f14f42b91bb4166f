"""conversations.alt_jid: a customer's second WhatsApp identifier (LID and phone number), one conversation

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

WhatsApp addresses many chats by LID (an opaque id) instead of the phone number, and gives the other one beside
it when it knows it. A conversation keeps the identifier it was created under in `chat_jid` (its key; replies
go there) and the other one, once seen, in `alt_jid`: the inbound insert finds the conversation under either,
so a customer seen under both stays one conversation, and the history's `chat=` filter finds it by either.
The index serves both lookups (partial: most conversations have no second identifier yet).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("alt_jid", sa.String(length=100), nullable=True))
    op.create_index(
        "ix_conversations_store_alt_jid",
        "conversations",
        ["store_id", "alt_jid"],
        postgresql_where=sa.text("alt_jid IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_store_alt_jid", table_name="conversations")
    op.drop_column("conversations", "alt_jid")
