"""Custody v2: event bodies kept as their exact bytes, checkpoint statements as signed.

Revision ID: 0011
Revises: 0010

v1 rows keep ``v`` 1 and no body. The ``attested`` events that bind recordings and
documents from before v2 are appended by ``evidence init`` after this migration (it needs
the chain's own code, which a migration should not import).
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("custody_events") as batch:
        batch.add_column(sa.Column("v", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("v", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("statement", sa.Text(), nullable=True))
        batch.add_column(sa.Column("key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("key")
        batch.drop_column("statement")
        batch.drop_column("v")
    with op.batch_alter_table("custody_events") as batch:
        batch.drop_column("body_hash")
        batch.drop_column("body")
        batch.drop_column("v")
