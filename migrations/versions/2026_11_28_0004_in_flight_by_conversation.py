"""in-flight messages indexed by conversation; no unique index on seq

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

The hot queries look for a chat's in-flight messages in one status (its oldest pending reply, its waiting
inbound ones). Indexed by store, each such lookup walked every in-flight row of the store (hundreds under
load); indexed by (status, conversation) it reads only the chat's rows in that status. The sweepers, which ask
for one status across stores, read only that status's rows.

`seq` is an identity, unique by construction: its unique index cost an index insertion for each of a
message's five row versions and served no query.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IN_FLIGHT = sa.text("status IN ('received', 'queued', 'pending', 'sending')")


def upgrade() -> None:
    op.drop_constraint("uq_messages_seq", "messages", type_="unique")
    # Every message leaves a few dead row versions (and in-flight index entries) behind: vacuum the hot tables
    # after 1% of their rows changed, not the default 20%, so a chat's in-flight lookups stay short.
    for table in ("messages", "conversations"):
        op.execute(
            f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 500)"
        )
    op.drop_index("ix_messages_in_flight", table_name="messages", postgresql_where=IN_FLIGHT)
    op.create_index(
        "ix_messages_in_flight",
        "messages",
        ["status", "conversation_id", "seq"],
        unique=False,
        postgresql_where=IN_FLIGHT,
    )


def downgrade() -> None:
    for table in ("messages", "conversations"):
        op.execute(f"ALTER TABLE {table} RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)")
    op.create_unique_constraint("uq_messages_seq", "messages", ["seq"])
    op.drop_index("ix_messages_in_flight", table_name="messages", postgresql_where=IN_FLIGHT)
    op.create_index(
        "ix_messages_in_flight",
        "messages",
        ["store_id", "status", "seq"],
        unique=False,
        postgresql_where=IN_FLIGHT,
    )
