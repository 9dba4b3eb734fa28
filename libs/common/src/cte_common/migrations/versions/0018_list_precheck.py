"""The sink's pre-check of URL-list entries: a member whose entry a URL list cannot hold (Netskope's
documented grammar, cte_common.url_list) is never pushed and takes no room under the cap.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# The view of migration 0012, with the members the pre-check refused shown 'unfit' first (they are
# never candidates, so the cut says nothing about them).
_VIEW = """
CREATE VIEW list_value_status AS
SELECT m.list_key, m.value, sh.source, sh.destination,
       CASE WHEN o.value IS NOT NULL THEN 'rejected'
            {invalid}
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
# How a member is written in its list, as cte_common.url_list writes it: a URL list holds no http,
# https or ftp scheme (in any case) and no IPv6. Whether the list can hold the rest is the pre-check's
# (list_members.invalid, decided by the sink when it takes the intent).
_LIST_ENTRY = """
CREATE OR REPLACE FUNCTION list_entry(value text, type text, url_list boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN NOT url_list THEN value
                WHEN type = 'ipv6' THEN NULL
                WHEN type = 'url' AND value ~* '^(https?|ftp)://' THEN substr(value, strpos(value, '://') + 3)
                ELSE value END
$$
"""


def upgrade() -> None:
    # netskope-sink: the member's entry is one its URL list cannot hold (the pre-check): never a
    # candidate, never pushed, shown 'unfit' (left out, invalid). Members already stored are checked
    # when an intent touches them again; IPv6 in a URL list is known invalid now.
    op.execute("ALTER TABLE list_members ADD COLUMN invalid boolean NOT NULL DEFAULT false")
    op.execute("UPDATE list_members SET invalid = true WHERE type = 'ipv6' AND split_part(list_key, '/', 2) = 'url'")
    op.execute(_LIST_ENTRY)
    op.execute("DROP VIEW IF EXISTS list_value_status")
    op.execute(_VIEW.format(invalid="WHEN m.invalid THEN 'unfit'"))
    # Every URL list is worked out again from the start at its next push.
    op.execute(
        "UPDATE list_state SET version = version + 1, cut_trusted = false WHERE split_part(list_key, '/', 2) = 'url'"
    )


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS list_value_status")
    op.execute(_VIEW.format(invalid=""))
    schemed = "(value LIKE 'http://%' OR value LIKE 'https://%' OR value LIKE 'ftp://%')"
    op.execute(_LIST_ENTRY.replace("value ~* '^(https?|ftp)://'", schemed))
    op.execute("ALTER TABLE list_members DROP COLUMN invalid")
