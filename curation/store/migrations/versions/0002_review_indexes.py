"""review indexes: queues, bulk actions and undo stay index-backed at a million samples

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:00:00

* samples (batch_id, passed, decision, id): the failures queue, the acceptance
  population and the bulk-accept selection seek straight to "undecided, passed /
  failed" samples of a batch, in id order (PostgreSQL needs the trailing id for that).
* verdicts (passed, sample_id): the uncertain and disagreement queues walk the
  null / failed verdicts in sample order.
* decisions (undoes_id): "has this event been undone?" without a scan.
* decisions (bulk_event_id, id): undo of a bulk event walks its decisions in order.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_samples_batch_passed_decision", "samples", ["batch_id", "passed", "decision", "id"])
    op.create_index("ix_verdicts_passed_sample", "verdicts", ["passed", "sample_id"])
    op.create_index("ix_decisions_undoes_id", "decisions", ["undoes_id"])
    op.create_index("ix_decisions_bulk_event_id", "decisions", ["bulk_event_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_decisions_bulk_event_id", table_name="decisions")
    op.drop_index("ix_decisions_undoes_id", table_name="decisions")
    op.drop_index("ix_verdicts_passed_sample", table_name="verdicts")
    op.drop_index("ix_samples_batch_passed_decision", table_name="samples")
