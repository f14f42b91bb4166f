"""messages: accent-insensitive Spanish full-text search over the text (a GIN index)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

`unaccent()` is only STABLE (its dictionary could change), and an index expression must be IMMUTABLE: the
wrapper `mostrador_unaccent(text)` names the dictionary explicitly and is declared IMMUTABLE, which is true as
long as nobody edits the unaccent rules file (if someone does, REINDEX the index). The query must use the very
same expression (`app/messages/repository.py`, `SEARCH_VECTOR`) for the planner to pick the index.

The index is partial (rows with a text only) and GIN keeps `fastupdate` on: an insert appends to the pending
list instead of updating the posting trees, which keeps the inbound insert's extra cost to computing one
tsvector and one pending-list append.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    # Schema-qualified names: the function must not depend on the caller's search_path (an index expression
    # is evaluated by autovacuum and by pg_restore, whose search_path is empty).
    op.execute(
        """
        CREATE OR REPLACE FUNCTION mostrador_unaccent(value text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        RETURN public.unaccent('public.unaccent'::regdictionary, value)
        """
    )
    op.execute(
        """
        CREATE INDEX ix_messages_text_search ON messages
        USING gin (to_tsvector('spanish'::regconfig, mostrador_unaccent(text)))
        WHERE text IS NOT NULL
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_messages_text_search")
    op.execute("DROP FUNCTION IF EXISTS mostrador_unaccent(text)")
