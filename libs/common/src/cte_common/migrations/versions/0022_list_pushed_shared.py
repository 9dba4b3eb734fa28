"""Whether an entry the tenant holds may be made by more than one kept value of its list.

A URL list's entry is made by a value with or without a scheme, so the removal of an entry whose value
left the kept prefix looked up every other value that could make it (four probes of list_members each),
although almost every entry is made by one value. The sink now records, per entry it put on the tenant,
whether a second kept value has made it since; only those entries are looked up when their value goes.
Entries held before this revision are taken as shared (looked up, as before) until they are pushed again.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: true may be stale (looked up for nothing), false never is (see lists.repository).
    op.execute("ALTER TABLE list_pushed ADD COLUMN shared boolean NOT NULL DEFAULT true")


def downgrade() -> None:
    op.execute("ALTER TABLE list_pushed DROP COLUMN shared")
