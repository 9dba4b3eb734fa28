"""Incremental pushes and the list status read at query time.

The netskope-sink keeps each list's cut (the last member the cap keeps) and the members changed since
the last push, so a push looks only at what changed and at the members around the cut. What a list
holds, leaves out or was refused is read from this state by ``list_value_status``, instead of being
written back into the read model as tags.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: the selection of the last recorded push. The kept members are exactly the
    # candidates (members not refused) up to (cut_priority, cut_value) in the order below, costing
    # cut_bytes (the first entry's extra byte included) in cut_count values; cut_value NULL keeps none.
    # Until cut_trusted, the next push works the selection out from the start of the order.
    op.execute(
        """
        ALTER TABLE list_state
            ADD COLUMN cut_priority double precision,
            ADD COLUMN cut_value    text COLLATE "C",
            ADD COLUMN cut_bytes    bigint  NOT NULL DEFAULT 1,
            ADD COLUMN cut_count    integer NOT NULL DEFAULT 0,
            ADD COLUMN cut_trusted  boolean NOT NULL DEFAULT false
        """
    )
    # netskope-sink: members changed since the last push (added, re-prioritised, removed, refused),
    # each with what it was at that push (old_priority NULL: it was not a member; old_candidate: it
    # was not refused). seq tells a change made while a push was under way from one the push saw.
    op.execute("CREATE SEQUENCE list_changes_seq")
    op.execute(
        """
        CREATE TABLE list_changes (
            list_key      text             NOT NULL,
            value         text             NOT NULL,
            seq           bigint           NOT NULL DEFAULT nextval('list_changes_seq'),
            old_priority  double precision,
            old_cost      integer,
            old_type      text,
            old_candidate boolean          NOT NULL DEFAULT true,
            PRIMARY KEY (list_key, value)
        )
        """
    )
    # The selection's order in one direction (highest priority first, the value in code point order
    # breaking ties), so a row comparison walks it from the cut either way; it carries what the walk reads.
    op.execute("DROP INDEX IF EXISTS list_members_order")
    op.execute(
        'CREATE INDEX list_members_cut ON list_members (list_key, (-priority), value COLLATE "C") '
        "INCLUDE (priority, cost_bytes, type)"
    )
    # How a member is written in its list: a URL list holds no scheme and no IPv6 (NULL: unfit).
    op.execute(
        """
        CREATE FUNCTION list_entry(value text, type text, url_list boolean) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT CASE WHEN NOT url_list THEN value
                        WHEN type = 'ipv6' THEN NULL
                        WHEN type = 'url' AND (value LIKE 'http://%' OR value LIKE 'https://%' OR value LIKE 'ftp://%')
                            THEN substr(value, strpos(value, '://') + 3)
                        ELSE value END
        $$
        """
    )
    # The one definition of where a value stands in each list, for the read side: 'pending' (changed
    # since the last push, or the list not pushed since this revision), 'shared' (kept and pushed),
    # 'left_out' (beyond the cut), 'unfit' (kept, but the list cannot hold its type), 'rejected' (the
    # tenant refused it). With the sharing's source and destination configuration, when it still exists.
    op.execute(
        """
        CREATE VIEW list_value_status AS
        SELECT m.list_key, m.value, sh.source, sh.destination,
               CASE WHEN o.value IS NOT NULL THEN 'rejected'
                    WHEN c.value IS NOT NULL OR NOT st.cut_trusted THEN 'pending'
                    WHEN st.cut_value IS NULL
                      OR (-m.priority, m.value COLLATE "C") > (-st.cut_priority, st.cut_value) THEN 'left_out'
                    WHEN list_entry(m.value, m.type, split_part(m.list_key, '/', 2) = 'url') IS NULL THEN 'unfit'
                    ELSE 'shared' END AS status
        FROM list_members m
        JOIN list_state st ON st.list_key = m.list_key
        LEFT JOIN sharings sh ON sh.list_key = m.list_key
        LEFT JOIN list_outcomes o ON o.list_key = m.list_key AND o.value = m.value AND o.outcome = 'rejected'
        LEFT JOIN list_changes c ON c.list_key = m.list_key AND c.value = m.value
        """
    )
    # Left-out outcomes are read from the cut now; only refusals stay rows. Every list is worked out
    # again from the start at its next push, and the tags the sink wrote into the read model go (they
    # are derived when read).
    op.execute("DELETE FROM list_outcomes WHERE outcome = 'left_out'")
    op.execute(
        "UPDATE list_state s SET version = version + 1, "
        "entries = (SELECT count(*) FROM list_pushed p WHERE p.list_key = s.list_key)"
    )
    op.execute(
        "UPDATE indicator_sources SET tags = array_remove(array_remove(tags, 'Unshared'), 'Invalid host') "
        "WHERE tags && ARRAY['Unshared', 'Invalid host']"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS list_value_status")
    op.execute("DROP FUNCTION IF EXISTS list_entry(text, text, boolean)")
    op.execute("DROP INDEX IF EXISTS list_members_cut")
    op.execute(
        'CREATE INDEX list_members_order ON list_members (list_key, priority DESC, value COLLATE "C") '
        "INCLUDE (cost_bytes, type)"
    )
    op.execute("DROP TABLE IF EXISTS list_changes")
    op.execute("DROP SEQUENCE IF EXISTS list_changes_seq")
    op.execute(
        "ALTER TABLE list_state DROP COLUMN cut_priority, DROP COLUMN cut_value, DROP COLUMN cut_bytes, "
        "DROP COLUMN cut_count, DROP COLUMN cut_trusted"
    )
