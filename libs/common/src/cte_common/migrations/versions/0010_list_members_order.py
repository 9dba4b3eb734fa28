"""The netskope-sink's selection within the cap, in PostgreSQL: members in priority order.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The order of the selection (highest priority first, the value in code point order breaking ties),
    # with the columns it reads: the running byte count walks the index instead of sorting the list.
    op.execute(
        'CREATE INDEX list_members_order ON list_members (list_key, priority DESC, value COLLATE "C") '
        "INCLUDE (cost_bytes, type)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS list_members_order")
