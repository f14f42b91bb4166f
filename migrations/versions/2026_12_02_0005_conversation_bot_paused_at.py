"""conversations.bot_paused_at: when the bot handed the chat to a person

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A store can have the bot answer a handed-off chat again after some minutes without a human reply
(`stores.settings.handoff.auto_resume_minutes`); that needs to know since when the chat is paused. Chats
paused before this revision count from their last update.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("bot_paused_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE conversations SET bot_paused_at = updated_at WHERE bot_paused")


def downgrade() -> None:
    op.drop_column("conversations", "bot_paused_at")
