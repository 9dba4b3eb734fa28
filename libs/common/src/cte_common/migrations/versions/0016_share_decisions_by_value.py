"""share_decisions keyed by (value, sharing_id): one index instead of two.

Every read of the table is by value (the rule-engine's load of a batch's decisions, the ager's check) or
by the whole key; the primary key led by value serves them all, and a new decision updates one index
instead of two (the primary key and ``share_decisions_value``).

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE share_decisions DROP CONSTRAINT share_decisions_pkey, ADD PRIMARY KEY (value, sharing_id)")
    op.execute("DROP INDEX share_decisions_value")


def downgrade() -> None:
    op.execute("CREATE INDEX share_decisions_value ON share_decisions (value)")
    op.execute("ALTER TABLE share_decisions DROP CONSTRAINT share_decisions_pkey, ADD PRIMARY KEY (sharing_id, value)")
