"""accounts: roles owner/admin/viewer, token revocation, API keys limited to one store, invites, onboarding links

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02

Chained onto 0004; another branch adds 0005 meanwhile, and whoever merges both re-chains one onto the other.

The placeholder "default" tenant that every request used to act for stays as it is: an ordinary tenant with
no users, which keeps its stores and their history. Nobody can sign in to it; an operator who wants those rows
under an account moves them (`UPDATE stores SET tenant_id = ...`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # `member` was never given out (there was no sign-up); were there any, read-only is the safe reading.
    op.execute("UPDATE users SET role = 'viewer' WHERE role NOT IN ('owner', 'admin', 'viewer')")
    op.create_check_constraint("role", "users", "role IN ('owner', 'admin', 'viewer')")
    op.add_column(
        "users",
        sa.Column(
            "tokens_valid_after", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
    )
    op.add_column("api_keys", sa.Column("store_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_api_keys_store_id_stores"), "api_keys", "stores", ["store_id"], ["id"], ondelete="CASCADE"
    )
    op.create_index(op.f("ix_api_keys_store_id"), "api_keys", ["store_id"], unique=False)
    op.create_table(
        "invites",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invited_by_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["invited_by_id"], ["users.id"], name=op.f("fk_invites_invited_by_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_invites_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invites_token_hash")),
    )
    op.create_index(op.f("ix_invites_tenant_id"), "invites", ["tenant_id"], unique=False)
    op.create_table(
        "onboarding_links",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("store_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"], ["stores.id"], name=op.f("fk_onboarding_links_store_id_stores"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_onboarding_links_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_onboarding_links_token_hash")),
    )
    op.create_index(op.f("ix_onboarding_links_store_id"), "onboarding_links", ["store_id"], unique=False)
    op.create_index(op.f("ix_onboarding_links_tenant_id"), "onboarding_links", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("onboarding_links")
    op.drop_table("invites")
    op.drop_index(op.f("ix_api_keys_store_id"), table_name="api_keys")
    op.drop_constraint(op.f("fk_api_keys_store_id_stores"), "api_keys", type_="foreignkey")
    op.drop_column("api_keys", "store_id")
    op.drop_column("users", "tokens_valid_after")
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.execute("UPDATE users SET role = 'member' WHERE role = 'viewer'")
