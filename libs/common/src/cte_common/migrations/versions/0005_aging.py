"""Aging criteria beyond whole days (units, per-type overrides, the base of the count); deletion of
inactive indicators.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ingest-api: null means "ageAfterDays from the ingest time", the reference's criterion.
    op.execute("ALTER TABLE configurations ADD COLUMN aging jsonb")
    # The ager's deleteInactiveIndicators query reads inactive indicators only.
    op.execute("CREATE INDEX indicators_inactive ON indicators (value) WHERE NOT active")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS indicators_inactive")
    op.execute("ALTER TABLE configurations DROP COLUMN IF EXISTS aging")
