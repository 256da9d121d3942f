"""Ingest jobs know which file they read: device, inode and ctime beside size and mtime
(a file rewritten in place with the same name, size and mtime is a new job), where the
station copy was moved and its ctime there (pruning deletes only that file unchanged), and
why a station copy could not be moved (reported once).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dev", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("ino", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("ctime_ns", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("moved_to", sa.String(length=4096), nullable=True))
        batch_op.add_column(sa.Column("moved_ctime_ns", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("copy_error", sa.Text(), nullable=True))
        batch_op.drop_constraint("uq_ingest_jobs_file", type_="unique")
        batch_op.create_unique_constraint(
            "uq_ingest_jobs_file", ["station_id", "path", "size", "mtime_ns", "dev", "ino", "ctime_ns"]
        )
        batch_op.create_index("ix_ingest_jobs_moved_to", ["station_id", "moved_to"], unique=False)


def downgrade() -> None:
    # Versions of one file told apart only by inode or ctime would break the older key:
    # the newest row of each is kept.
    op.execute(
        "DELETE FROM ingest_jobs WHERE id NOT IN (SELECT max(id) FROM ingest_jobs "
        "GROUP BY station_id, path, size, mtime_ns)"
    )
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_jobs_moved_to")
        batch_op.drop_constraint("uq_ingest_jobs_file", type_="unique")
        batch_op.create_unique_constraint("uq_ingest_jobs_file", ["station_id", "path", "size", "mtime_ns"])
        batch_op.drop_column("copy_error")
        batch_op.drop_column("moved_ctime_ns")
        batch_op.drop_column("moved_to")
        batch_op.drop_column("ctime_ns")
        batch_op.drop_column("ino")
        batch_op.drop_column("dev")
