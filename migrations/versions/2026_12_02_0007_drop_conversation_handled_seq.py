"""Drop conversations.handled_seq: written on every handled run, read by nothing

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Handling is idempotent without it: the worker locks the conversation and handles only the chat's inbound rows
still `received`/`queued` (their status is the guard), so a redelivered entry finds nothing to do. The
watermark only cost a write per handled run.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("conversations", "handled_seq")


def downgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("handled_seq", sa.BigInteger(), nullable=False, server_default="0"),
    )
