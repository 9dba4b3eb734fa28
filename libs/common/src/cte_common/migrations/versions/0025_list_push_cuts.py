"""The cut a push under way has worked out, in a table of its own.

0023 kept it in list_state, whose row every intents batch of the list updates (its version) and holds
until it commits: publishing the cut waited for the batch under way, 0.7 s a push in the pipeline
benchmark, on a machine running everything at once. Intents only read this table, so the publish never
waits for them; a batch that read before it tracks every change, as before the cut is known.

Revision ID: 0025
Revises: 0024
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: a row from the push's preparation to its record (or its next preparation);
    # value NULL: the push keeps nothing.
    op.execute(
        """
        CREATE TABLE list_push_cuts (
            list_key text PRIMARY KEY,
            priority double precision,
            value    text
        )
        """
    )
    op.execute(
        "INSERT INTO list_push_cuts SELECT list_key, push_cut_priority, push_cut_value FROM list_state "
        "WHERE push_cut_known"
    )
    op.execute(
        "ALTER TABLE list_state DROP COLUMN push_cut_known, DROP COLUMN push_cut_priority, DROP COLUMN push_cut_value"
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE list_state
            ADD COLUMN push_cut_known    boolean NOT NULL DEFAULT false,
            ADD COLUMN push_cut_priority double precision,
            ADD COLUMN push_cut_value    text
        """
    )
    op.execute(
        "UPDATE list_state s SET push_cut_known = true, push_cut_priority = c.priority, push_cut_value = c.value "
        "FROM list_push_cuts c WHERE c.list_key = s.list_key"
    )
    op.execute("DROP TABLE list_push_cuts")
