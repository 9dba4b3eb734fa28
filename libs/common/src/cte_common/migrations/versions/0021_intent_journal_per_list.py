"""The intent journal holds one row per list and deciding attempt, its values in an array.

A row per (list, value) cost every published intent an insertion (heap and index), a WAL record and a
deletion, written by every deciding transaction; the journal is read only when a transaction did not
commit. A row per list and attempt, written and deleted by the same statements as before, keeps what
the journal says (every (list, value) a transaction published before it committed) at a few rows per
batch. Rows left by 0015's shape are carried over, grouped.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE intent_journal_lists (
            attempt          uuid        NOT NULL,
            list_key         text        NOT NULL,
            indicator_values text[]      NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (attempt, list_key)
        )
        """
    )
    op.execute(
        """
        INSERT INTO intent_journal_lists (attempt, list_key, indicator_values, created_at)
        SELECT attempt, list_key, array_agg(value), min(created_at) FROM intent_journal GROUP BY attempt, list_key
        """
    )
    op.execute("DROP TABLE intent_journal")
    op.execute("ALTER TABLE intent_journal_lists RENAME TO intent_journal")
    op.execute("ALTER INDEX intent_journal_lists_pkey RENAME TO intent_journal_pkey")


def downgrade() -> None:
    op.execute(
        """
        CREATE TABLE intent_journal_pairs (
            attempt    uuid        NOT NULL,
            list_key   text        NOT NULL,
            value      text        NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        INSERT INTO intent_journal_pairs (attempt, list_key, value, created_at)
        SELECT j.attempt, j.list_key, v, j.created_at FROM intent_journal j, unnest(j.indicator_values) AS v
        """
    )
    op.execute("DROP TABLE intent_journal")
    op.execute("ALTER TABLE intent_journal_pairs RENAME TO intent_journal")
    op.execute("CREATE INDEX intent_journal_attempt ON intent_journal (attempt)")
