"""Alert polling paced by the tenant: when each iterator is due again, and whether a `next` is unanswered.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: next_sent: a `next` went out whose page has not been taken (its answer was lost,
    # or the process died): the next drain asks `resend` for it, and only then. Rows from before this
    # revision start true, since the poller they come from did not record it.
    # due_at: not polled before this time (the tenant's wait_time after the last page), by the
    # database's clock, so every sink process keeps to it.
    op.execute("ALTER TABLE poll_checkpoints ADD COLUMN next_sent boolean NOT NULL DEFAULT true")
    op.execute("ALTER TABLE poll_checkpoints ALTER COLUMN next_sent SET DEFAULT false")
    op.execute("ALTER TABLE poll_checkpoints ADD COLUMN due_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE poll_checkpoints DROP COLUMN IF EXISTS due_at, DROP COLUMN IF EXISTS next_sent")
