"""Digests of stored bytes (ciphertext of protected records), document protection, catalog keys,
and the outbox of storage records.

Columns added to existing tables carry server defaults so that catalogs with
rows upgrade in place.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_keys",
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_catalog_keys")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("lock_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("key", name=op.f("uq_outbox_key")),
    )
    with op.batch_alter_table("derivatives", schema=None) as batch_op:
        batch_op.add_column(sa.Column("encrypted", sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manifest_key", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("protected", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("encrypted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("stored_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stored_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.String(length=200), nullable=False, server_default=""))

    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stored_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stored_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("stored_size")
        batch_op.drop_column("stored_sha256")

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("created_by")
        batch_op.drop_column("stored_size")
        batch_op.drop_column("stored_sha256")
        batch_op.drop_column("encrypted")
        batch_op.drop_column("protected")
        batch_op.drop_column("manifest_key")

    with op.batch_alter_table("derivatives", schema=None) as batch_op:
        batch_op.drop_column("encrypted")

    op.drop_table("outbox")
    op.drop_table("catalog_keys")
