"""The sink marks a list whose content on the tenant is unknown (a changing call whose answer was lost);
an index for the ager's question "does a list still hold this value?".

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: set before every call that may change the list, cleared when the outcome is
    # recorded. While set, list_pushed is not trusted: the next push rewrites the whole list.
    op.execute("ALTER TABLE list_state ADD COLUMN uncertain boolean NOT NULL DEFAULT false")
    # The ager asks whether any list still holds a value (deleteInactiveIndicators).
    op.execute("CREATE INDEX list_pushed_value ON list_pushed (value)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS list_pushed_value")
    op.execute("ALTER TABLE list_state DROP COLUMN IF EXISTS uncertain")
