"""Destination fidelity: entries the sink did not put on a list (foreign), what the tenant's limits
leave out, a list the tenant refuses, a tenant whose credentials it rejects; list costs counted on the
entry as pushed.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: per list, what its last read-back found that the sink did not put there (never
    # removed, counted against the cap), what the tenant-wide limits left out at the last push, and
    # whether the tenant refused the list other than entry by entry (``refused``: state "failed"), with
    # the configuration it refused (``refused_config``: a change of it makes the list due at once).
    op.execute(
        """
        ALTER TABLE list_state
            ADD COLUMN foreign_entries   integer NOT NULL DEFAULT 0,
            ADD COLUMN foreign_bytes     bigint  NOT NULL DEFAULT 0,
            ADD COLUMN left_out_tenant   integer NOT NULL DEFAULT 0,
            ADD COLUMN refused           boolean NOT NULL DEFAULT false,
            ADD COLUMN refused_config    text,
            ADD COLUMN last_read_back_at timestamptz
        """
    )
    # netskope-sink: the foreign entries of each list as last read back: never appended as ours (an
    # entry an administrator added stays theirs even when a value of ours makes the same entry).
    op.execute("CREATE TABLE list_foreign (list_key text NOT NULL, value text NOT NULL, PRIMARY KEY (list_key, value))")
    # netskope-sink: the entries a changing call is about to add, written before the call: when its
    # answer is lost, those the read-back finds are ours (and the others' entries stay theirs).
    op.execute("CREATE TABLE list_claims (list_key text NOT NULL, value text NOT NULL, PRIMARY KEY (list_key, value))")
    # netskope-sink: per tenant, whether it rejected the credentials (401/403) and which credentials
    # (``rejected_credentials``: a digest of the stored tokens and the row's update time; nothing is sent
    # to the tenant while they are the same), and the URL-list entries of lists no sharing names (the
    # tenant's limits count them too), as last read.
    op.execute(
        """
        CREATE TABLE tenant_state (
            tenant               text        PRIMARY KEY,
            rejected_credentials text,
            rejected_message     text,
            rejected_at          timestamptz,
            other_url_entries    integer     NOT NULL DEFAULT 0,
            other_regex_entries  integer     NOT NULL DEFAULT 0,
            read_at              timestamptz
        )
        """
    )
    # What a refusal or a rejection is compared with: a digest of a tenant's credentials (its stored
    # tokens and the row's update time: any PATCH of the tenant counts as new credentials), and of a
    # list's configuration (its sharing, the destination configuration, the tenant's credentials).
    op.execute(
        """
        CREATE FUNCTION tenant_credentials(tenant text) RETURNS text LANGUAGE sql STABLE AS $$
            SELECT md5(concat_ws('/', t.v1_token_encrypted, t.v2_token_encrypted, t.updated_at::text))
            FROM tenants t WHERE t.name = tenant
        $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION list_configuration(key text) RETURNS text LANGUAGE sql STABLE AS $$
            SELECT md5(concat_ws('/',
                (SELECT concat_ws('/', s.parameters::text, s.updated_at::text, c.updated_at::text)
                 FROM sharings s LEFT JOIN configurations c ON c.name = s.destination WHERE s.list_key = key),
                tenant_credentials(split_part(key, '/', 1))))
        $$
        """
    )
    # A URL list's entry has no scheme: its cost is counted without it (json.dumps escapes nothing in
    # an ASCII scheme, so the difference is its length). Every URL list is worked out again.
    schemed = "(value LIKE 'http://%' OR value LIKE 'https://%' OR value LIKE 'ftp://%')"
    op.execute(
        f"""
        UPDATE list_members SET cost_bytes = cost_bytes - (strpos(value, '://') + 2)
        WHERE split_part(list_key, '/', 2) = 'url' AND type = 'url' AND {schemed}
        """
    )
    op.execute(
        f"""
        UPDATE share_decisions d SET cost_bytes = cost_bytes - (strpos(d.value, '://') + 2)
        FROM indicators i
        WHERE i.value = d.value AND i.type = 'url' AND split_part(d.list_key, '/', 2) = 'url'
          AND {schemed.replace("value", "d.value")}
        """
    )
    op.execute(
        "UPDATE list_state SET version = version + 1, cut_trusted = false WHERE split_part(list_key, '/', 2) = 'url'"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS list_configuration(text)")
    op.execute("DROP FUNCTION IF EXISTS tenant_credentials(text)")
    op.execute("DROP TABLE IF EXISTS tenant_state")
    op.execute("DROP TABLE IF EXISTS list_claims")
    op.execute("DROP TABLE IF EXISTS list_foreign")
    op.execute(
        "ALTER TABLE list_state DROP COLUMN foreign_entries, DROP COLUMN foreign_bytes, DROP COLUMN left_out_tenant, "
        "DROP COLUMN refused, DROP COLUMN refused_config, DROP COLUMN last_read_back_at"
    )
