"""An indicator's first and last seen are its current sources' (recomputed when a source is dropped).

Before, dropping one source's entry left the indicator's dates as they were, so an indicator could stay
later than all of its sources. Filters on the sources' lastSeen are now answered from the indicator's
own column (cte_common.query.sql), so the rows that drifted are brought back to their sources' dates.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE indicators AS i SET first_seen = s.first_seen, last_seen = s.last_seen, updated_at = now()
        FROM (
            SELECT value, min(first_seen) AS first_seen, max(last_seen) AS last_seen
            FROM indicator_sources GROUP BY value
        ) AS s
        WHERE s.value = i.value AND (i.first_seen <> s.first_seen OR i.last_seen <> s.last_seen)
        """
    )


def downgrade() -> None:
    # The dates before were not kept; the recomputed ones are valid under the old rule as well.
    pass
