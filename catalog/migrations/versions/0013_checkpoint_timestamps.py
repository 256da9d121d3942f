"""Trusted time: each checkpoint's RFC 3161 time-stamp token, once a TSA has given it.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        # The token as the TSA answered it (DER TimeStampResp), and whether its copy beside the
        # checkpoint in storage is written (a store that was down gets it at the next run).
        batch.add_column(sa.Column("tsa_token", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("tsa_stored", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("tsa_stored")
        batch.drop_column("tsa_token")
