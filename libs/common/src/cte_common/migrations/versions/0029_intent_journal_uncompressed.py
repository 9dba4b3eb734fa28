"""The intent journal's value arrays are stored out of line without compression.

A deciding transaction's journal row holds every value it publishes to a list (a few thousand, some
hundreds of kilobytes) and is deleted by that transaction's commit: it is read only after a crash.
PostgreSQL compressed each array with pglz on the way in: writing and deleting the row took 1.05 µs
of the backend's CPU per value, 0.27 µs stored as it is (bench/journal_storage.py). The row never lives
long enough for its size to matter.

Revision ID: 0029
Revises: 0028
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE intent_journal ALTER COLUMN indicator_values SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE intent_journal ALTER COLUMN indicator_values SET STORAGE EXTENDED")
