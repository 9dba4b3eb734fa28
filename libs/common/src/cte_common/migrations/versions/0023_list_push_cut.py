"""The cut a push under way has worked out, for the intents that arrive before it is recorded.

A change to a value beyond a list's cut, before and after, changes nothing the tenant holds: the sink
counts it as left out instead of tracking it for the next push. While a push is under way the list
ends up at that push's cut, not the last recorded one, so the push publishes it here once prepared
(push_cut_known), and the intents compare with both.

Revision ID: 0023
Revises: 0022
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: set once a push is prepared, cleared when it is prepared again or recorded.
    op.execute(
        """
        ALTER TABLE list_state
            ADD COLUMN push_cut_known    boolean NOT NULL DEFAULT false,
            ADD COLUMN push_cut_priority double precision,
            ADD COLUMN push_cut_value    text
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE list_state DROP COLUMN push_cut_known, DROP COLUMN push_cut_priority, DROP COLUMN push_cut_value"
    )
