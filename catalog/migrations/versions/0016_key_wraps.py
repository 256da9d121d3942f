"""Key wraps: data keys wrapped under each KEK, kept as their own objects (format v2).

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "key_wraps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("kek_id", sa.String(length=16), nullable=False),
        sa.Column("binding", sa.String(length=32), nullable=False),
        sa.Column("storage_key", sa.String(length=1100), nullable=False),
        sa.Column("storage_version", sa.String(length=256), nullable=True),
        sa.Column("wrap", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_wraps")),
        sa.UniqueConstraint("storage_key", "binding", name="uq_key_wraps_storage_key_binding"),
    )
    op.create_index(op.f("ix_key_wraps_object_key"), "key_wraps", ["object_key"])
    op.create_index(op.f("ix_key_wraps_kek_id"), "key_wraps", ["kek_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_key_wraps_kek_id"), table_name="key_wraps")
    op.drop_index(op.f("ix_key_wraps_object_key"), table_name="key_wraps")
    op.drop_table("key_wraps")
