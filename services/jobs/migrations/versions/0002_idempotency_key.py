"""Jobs remember the Idempotency-Key they were submitted with and a fingerprint of the submission.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the key (unique: a retry finds the job it made) and the submission's fingerprint."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("submission_sha256", sa.String(64), nullable=True))
        batch.create_index("ix_jobs_idempotency_key", ["idempotency_key"], unique=True)


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_idempotency_key")
        batch.drop_column("submission_sha256")
        batch.drop_column("idempotency_key")
