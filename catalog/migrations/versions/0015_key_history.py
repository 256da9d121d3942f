"""The signing keys' history: key-change and retirement statements, as signed.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_statements",
        # The statement's file stem in storage (custody/keys/changes/{name}.json).
        sa.Column("name", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        # JSON of the raw signatures in base64 ({"old", "new"} or {"by"}).
        sa.Column("signatures", sa.Text(), nullable=False),
        sa.Column("stored", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_key_statements")),
    )


def downgrade() -> None:
    op.drop_table("key_statements")
