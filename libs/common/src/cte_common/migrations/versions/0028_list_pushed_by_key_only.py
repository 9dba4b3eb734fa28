"""list_pushed is read by its primary key only: its index on value goes.

The index served one question, the ager's "does any list still hold this value?" before it deletes
an inactive indicator. The ager now asks each list in turn through the primary key (list_key,
value): there are a few lists and many values, so that is a few probes per indicator. Every entry a
push appends no longer writes a second index entry (a quarter of that insert's buffers and WAL,
bench/notes.md).

Revision ID: 0028
Revises: 0027
"""

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS list_pushed_value")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS list_pushed_value ON list_pushed (value)")
