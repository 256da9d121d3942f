"""Ingest jobs: retry time and outcome; jobs name stations without a foreign key
(a job is recorded before its station row exists, e.g. for a file quarantined first).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_try", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_ingest_jobs_station_id"), ["station_id"], unique=False)
        batch_op.drop_constraint(batch_op.f("fk_ingest_jobs_station_id_stations"), type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_ingest_jobs_station_id_stations"), "stations", ["station_id"], ["id"]
        )
        batch_op.drop_index(batch_op.f("ix_ingest_jobs_station_id"))
        batch_op.drop_column("outcome")
        batch_op.drop_column("next_try")
