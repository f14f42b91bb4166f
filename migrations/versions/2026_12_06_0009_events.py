"""events: every store's change log (messages created, status changes, store status, chats paused), by trigger

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Triggers, not application code, write the log: every writer of `messages`, `stores` and `conversations` (the
session manager's group commits, the worker's handler, the API) gets its events in the same transaction for
free, and none can forget one. No foreign keys: each would add a lookup per row to those writes; a trigger
deletes a deleted store's rows instead. They are statement-level triggers with transition tables, so a batched
INSERT/UPDATE of a thousand rows adds one INSERT ... SELECT, not a thousand trigger calls.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FUNCTIONS = {
    "mostrador_events_messages_insert": """
        INSERT INTO events (store_id, kind, message_id, conversation_id, status, error)
        SELECT n.store_id, 'message.created', n.id, n.conversation_id, n.status, n.error
        FROM new_rows n ORDER BY n.seq""",
    "mostrador_events_messages_update": """
        INSERT INTO events (store_id, kind, message_id, conversation_id, status, error)
        SELECT n.store_id, 'message.status', n.id, n.conversation_id, n.status, n.error
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status ORDER BY n.seq""",
    "mostrador_events_stores_update": """
        INSERT INTO events (store_id, kind, status, error)
        SELECT n.id, 'store.status', n.status, n.status_reason
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.status IS DISTINCT FROM o.status""",
    "mostrador_events_conversations_update": """
        INSERT INTO events (store_id, kind, conversation_id, status)
        SELECT n.store_id, 'conversation.bot_paused', n.id,
               CASE WHEN n.bot_paused THEN 'paused' ELSE 'resumed' END
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.bot_paused IS DISTINCT FROM o.bot_paused""",
    # No foreign keys on `events` (a lookup per row on the hottest writes): a deleted store takes its rows here.
    "mostrador_events_stores_delete": """
        DELETE FROM events WHERE store_id IN (SELECT id FROM old_rows)""",
}
# (trigger, table, event, transition tables)
_TRIGGERS = [
    ("mostrador_events_messages_insert", "messages", "INSERT", "NEW TABLE AS new_rows"),
    ("mostrador_events_messages_update", "messages", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("mostrador_events_stores_update", "stores", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("mostrador_events_stores_delete", "stores", "DELETE", "OLD TABLE AS old_rows"),
    (
        "mostrador_events_conversations_update",
        "conversations",
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    ),
]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "xid",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_store_xid", "events", ["store_id", "xid", "id"])
    op.create_index(
        "ix_events_message",
        "events",
        ["message_id", "id"],
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )
    for name, body in _FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN{body};\n  RETURN NULL;\nEND\n$$"
        )
    for name, table, event, transitions in _TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transitions} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )


def downgrade() -> None:
    for name, table, _event, _transitions in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for name in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_index("ix_events_message", table_name="events")
    op.drop_index("ix_events_store_xid", table_name="events")
    op.drop_table("events")
