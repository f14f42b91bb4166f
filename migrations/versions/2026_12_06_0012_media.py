"""media: uploads, a per-tenant media retention, and the indexes of the media download sweep and retention job

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

A message's media lives in storage (local files or S3), described by its row's `media` JSON, whose `state` is
`pending` (to download) | `stored` | `failed` | `expired` (docs/contracts.md). The two partial indexes hold only
rows with such a state: the inbound insert of a text message pays nothing for them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("media_retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "uploads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("mime", sa.String(length=150), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=True),
        sa.Column("storage_key", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_uploads_store_id_stores"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_uploads_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    op.create_index(op.f("ix_uploads_tenant_id"), "uploads", ["tenant_id"])
    op.create_index(op.f("ix_uploads_expires_at"), "uploads", ["expires_at"])
    op.create_index(
        "ix_messages_media_pending",
        "messages",
        ["store_id"],
        postgresql_where=sa.text("(media ->> 'state') = 'pending'"),
    )
    op.create_index(
        "ix_messages_media_kept",
        "messages",
        ["created_at"],
        postgresql_where=sa.text("(media ->> 'state') IN ('pending', 'stored', 'failed')"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_media_kept", table_name="messages")
    op.drop_index("ix_messages_media_pending", table_name="messages")
    op.drop_index(op.f("ix_uploads_expires_at"), table_name="uploads")
    op.drop_index(op.f("ix_uploads_tenant_id"), table_name="uploads")
    op.drop_table("uploads")
    op.drop_column("tenants", "media_retention_days")
