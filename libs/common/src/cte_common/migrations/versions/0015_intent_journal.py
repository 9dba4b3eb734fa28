"""Share intents published by a decision transaction that has not committed yet.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written by the rule-engine only. A transaction that decides publishes its share intents before
    # it commits (under the indicators' row locks, so one value's intents reach the sink in decision
    # order). The (list, value) pairs are written here, on a separate connection, before the publish,
    # and deleted by the deciding transaction itself: rows that outlive their transaction name intents
    # that were published by a transaction that rolled back or died, which the sink has applied and the
    # decisions do not hold. The rule-engine publishes the committed decision for each of them again.
    op.execute(
        """
        CREATE TABLE intent_journal (
            attempt    uuid        NOT NULL,
            list_key   text        NOT NULL,
            value      text        NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX intent_journal_attempt ON intent_journal (attempt)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS intent_journal")
