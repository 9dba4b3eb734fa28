"""The netskope-sink's list state: what each list holds on the tenant, and when it must be pushed.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: one row per destination list. `version` counts applied intent batches; a flush
    # that pushed up to `version` records it in `flushed_version`, so the list is due again only when
    # intents arrived after the flush started.
    op.execute(
        """
        CREATE TABLE list_state (
            list_key        text        PRIMARY KEY,
            version         bigint      NOT NULL DEFAULT 0,
            flushed_version bigint      NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            failures        integer     NOT NULL DEFAULT 0,
            last_error      text,
            last_push_at    timestamptz,
            entries         integer     NOT NULL DEFAULT 0,
            bytes           bigint      NOT NULL DEFAULT 0,
            cap_bytes       bigint      NOT NULL DEFAULT 0,
            left_out        integer     NOT NULL DEFAULT 0,
            rejected        integer     NOT NULL DEFAULT 0
        )
        """
    )
    op.execute("CREATE INDEX list_state_due ON list_state (next_attempt_at) WHERE version > flushed_version")
    # netskope-sink: what the tenant holds, as last pushed (a file hash list cannot be read back).
    op.execute("CREATE TABLE list_pushed (list_key text NOT NULL, value text NOT NULL, PRIMARY KEY (list_key, value))")
    # netskope-sink: values the tenant refused ("Invalid host") or the cap left out ("Unshared").
    op.execute(
        """
        CREATE TABLE list_outcomes (
            list_key text NOT NULL,
            value    text NOT NULL,
            outcome  text NOT NULL CHECK (outcome IN ('rejected', 'left_out')),
            reason   text NOT NULL DEFAULT '',
            PRIMARY KEY (list_key, value)
        )
        """
    )
    # The reference's tags for what was not shared; the sink applies them through indicator events.
    op.execute(
        "INSERT INTO tags (name, color) VALUES ('Unshared', '#ED3347'), ('Invalid host', '#ED3347') "
        "ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    for table in ("list_outcomes", "list_pushed", "list_state"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
