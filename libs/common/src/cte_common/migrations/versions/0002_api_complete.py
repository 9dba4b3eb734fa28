"""The complete API: sign-in throttling, Netskope tenants, indexes for the filters and sorts of GET.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ingest-api: failed sign-ins per client, for throttling /api/auth across every API replica.
    op.execute("ALTER TABLE api_clients ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE api_clients ADD COLUMN locked_until timestamptz")
    op.execute("ALTER TABLE api_clients ADD COLUMN last_used_at timestamptz")
    # ingest-api: Netskope tenants. Tokens are encrypted with CTE_SECRETS_KEY and never leave the server.
    op.execute(
        """
        CREATE TABLE tenants (
            name               text        PRIMARY KEY,
            tenant_name        text        NOT NULL,
            base_url           text        NOT NULL,
            v1_token_encrypted text,
            v2_token_encrypted text,
            initial_range_days integer     NOT NULL DEFAULT 7 CHECK (initial_range_days BETWEEN 0 AND 365),
            use_proxy          boolean     NOT NULL DEFAULT false,
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "ALTER TABLE configurations ADD CONSTRAINT configurations_tenant_fk "
        "FOREIGN KEY (tenant) REFERENCES tenants (name) ON UPDATE CASCADE"
    )
    # The filter language compares text case-insensitively (type and severity exactly).
    op.execute("CREATE INDEX indicators_value_lower ON indicators (lower(value))")
    op.execute("CREATE INDEX indicator_sources_source_lower ON indicator_sources (lower(source))")
    op.execute("CREATE INDEX indicator_sources_severity ON indicator_sources (severity)")
    # Sorted pages: the value breaks ties, so (column, value) serves ORDER BY ... LIMIT both ways.
    op.execute("DROP INDEX indicators_last_seen")
    op.execute("DROP INDEX indicators_type")
    for column in ("last_seen", "first_seen", "expires_at", "type", "internal_hits", "external_hits"):
        op.execute(f"CREATE INDEX indicators_{column}_value ON indicators ({column}, value)")


def downgrade() -> None:
    for column in ("last_seen", "first_seen", "expires_at", "type", "internal_hits", "external_hits"):
        op.execute(f"DROP INDEX IF EXISTS indicators_{column}_value")
    op.execute("CREATE INDEX indicators_last_seen ON indicators (last_seen)")
    op.execute("CREATE INDEX indicators_type ON indicators (type)")
    op.execute("DROP INDEX IF EXISTS indicator_sources_severity")
    op.execute("DROP INDEX IF EXISTS indicator_sources_source_lower")
    op.execute("DROP INDEX IF EXISTS indicators_value_lower")
    op.execute("ALTER TABLE configurations DROP CONSTRAINT IF EXISTS configurations_tenant_fk")
    op.execute("DROP TABLE IF EXISTS tenants")
    for column in ("last_used_at", "locked_until", "failed_attempts"):
        op.execute(f"ALTER TABLE api_clients DROP COLUMN IF EXISTS {column}")
