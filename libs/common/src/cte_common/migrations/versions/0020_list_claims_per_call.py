"""A changing call's claim is one row: the entries it adds, as one array (a row per entry before).

A push that adds 20,000 entries wrote 20,000 claim rows and index entries before its call, and deleted
them all after; and the first push of a large list left as many dead index entries for the next delete
to walk. The lost-answer guarantee needs only to know which entries a call adds, which one array says.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE list_claims RENAME TO list_claims_by_entry")
    # netskope-sink: per changing call not yet recorded, the entries it adds (see reconcile).
    op.execute(
        "CREATE TABLE list_claims (list_key text NOT NULL, call bigint GENERATED ALWAYS AS IDENTITY, "
        "entries text[] NOT NULL, PRIMARY KEY (list_key, call))"
    )
    op.execute(
        "INSERT INTO list_claims (list_key, entries) "
        "SELECT list_key, array_agg(value ORDER BY value) FROM list_claims_by_entry GROUP BY list_key"
    )
    op.execute("DROP TABLE list_claims_by_entry")


def downgrade() -> None:
    op.execute("ALTER TABLE list_claims RENAME TO list_claims_by_call")
    op.execute("CREATE TABLE list_claims (list_key text NOT NULL, value text NOT NULL, PRIMARY KEY (list_key, value))")
    op.execute(
        "INSERT INTO list_claims (list_key, value) SELECT DISTINCT list_key, unnest(entries) FROM list_claims_by_call "
        "ON CONFLICT DO NOTHING"
    )
    op.execute("DROP TABLE list_claims_by_call")
