"""A list at its cap fed without a pause keeps room below its cap, and fills it once the feed pauses.

While new values keep arriving at the top of a list at its cap, every push would otherwise give up
entries at the bottom, and giving up is a replace of the whole list on the tenant. The sink trims such
a list below its cap by a reserve sized on its inflow, so that the pushes after it are appends until
the reserve is used (netskope_sink.lists.domain.CapReserve); once the feed pauses the list is filled
up to its cap again.

- trimmed_at: when a push last gave up entries because the list was over its cap (a second trim soon
  after the first is what tells a list fed without a pause);
- settle_at: when a list the reserve held below its cap is pushed again, even without a change, to
  fill up to its cap (NULL: nothing held back).

Revision ID: 0027
Revises: 0026
"""

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE list_state ADD COLUMN trimmed_at timestamptz, ADD COLUMN settle_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE list_state DROP COLUMN trimmed_at, DROP COLUMN settle_at")
