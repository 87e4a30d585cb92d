"""minhash signatures: stored per (parameters, content hash) so a rerun signs only new texts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 05:30:00

* minhash_signatures (params, content_hash) → signature: the near-duplicate check's
  MinHash signature of a sample's text, written only by the dedup job's driver.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "minhash_signatures",
        sa.Column("params", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("params", "content_hash"),
    )


def downgrade() -> None:
    op.drop_table("minhash_signatures")
