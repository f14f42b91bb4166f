"""idempotency_keys: the `Idempotency-Key` of each send, unique per store

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A key is claimed by inserting its row: two concurrent requests with one key meet at the unique constraint (the
second waits for the first's commit), so they make one message, never two.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_idempotency_keys_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_idempotency_keys_store_id_stores"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("store_id", "key", name=op.f("uq_idempotency_keys_store_id_key")),
    )
    op.create_index("ix_idempotency_keys_store_created", "idempotency_keys", ["store_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_store_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
