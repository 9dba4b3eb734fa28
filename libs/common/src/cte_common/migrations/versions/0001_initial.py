"""Initial schema: consumer positions, configuration tables, the indicator read model, list state.

Each table has one owning service (the comment above it); the others only read it.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every consumer's applied positions, written in the same transaction as its effects.
    op.execute(
        """
        CREATE TABLE consumer_offsets (
            consumer    text        NOT NULL,
            topic       text        NOT NULL,
            partition   integer     NOT NULL,
            next_offset bigint      NOT NULL,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, topic, partition)
        )
        """
    )
    # ingest-api
    op.execute(
        """
        CREATE TABLE api_clients (
            client_id    text        PRIMARY KEY,
            secret_hash  text        NOT NULL,
            description  text        NOT NULL DEFAULT '',
            scopes       text[]      NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            expires_at   timestamptz,
            revoked_at   timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE configurations (
            name                    text        PRIMARY KEY,
            plugin                  text        NOT NULL,
            active                  boolean     NOT NULL DEFAULT true,
            age_after_days          integer     NOT NULL DEFAULT 90 CHECK (age_after_days BETWEEN 0 AND 365),
            reputation              integer     NOT NULL DEFAULT 0 CHECK (reputation BETWEEN 0 AND 10),
            ssl_validation          boolean     NOT NULL DEFAULT true,
            use_proxy               boolean     NOT NULL DEFAULT false,
            tags_aggregate_strategy text        NOT NULL DEFAULT 'append'
                                                CHECK (tags_aggregate_strategy IN ('append', 'overwrite')),
            tenant                  text,
            parameters              jsonb       NOT NULL DEFAULT '{}',
            created_at              timestamptz NOT NULL DEFAULT now(),
            updated_at              timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE tags (
            name       text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 500),
            color      text        NOT NULL DEFAULT '#969696',
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE cte_settings (
            id                         boolean PRIMARY KEY DEFAULT true CHECK (id),
            criterion                  text    NOT NULL DEFAULT 'lastSeen'
                                               CHECK (criterion IN
                                                      ('lastSeen', 'firstSeen', 'highestSeverity')),
            delete_inactive_indicators boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute("INSERT INTO cte_settings DEFAULT VALUES")
    # rule-engine: the indicator read model.
    op.execute(
        """
        CREATE TABLE indicators (
            value                text        PRIMARY KEY,
            type                 text        NOT NULL,
            test                 boolean     NOT NULL DEFAULT false,
            safe                 boolean     NOT NULL DEFAULT false,
            active               boolean     NOT NULL DEFAULT true,
            expires_at           timestamptz,
            source               text        NOT NULL,
            first_seen           timestamptz NOT NULL,
            last_seen            timestamptz NOT NULL,
            reputation           integer,
            severity             text        NOT NULL,
            comments             text        NOT NULL DEFAULT '',
            extended_information text        NOT NULL DEFAULT '',
            internal_hits        bigint      NOT NULL DEFAULT 0,
            external_hits        bigint      NOT NULL DEFAULT 0,
            shared_with          text[]      NOT NULL DEFAULT '{}',
            created_at           timestamptz NOT NULL DEFAULT now(),
            updated_at           timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # The ager's query: active indicators by due time.
    op.execute("CREATE INDEX indicators_due ON indicators (expires_at) WHERE active AND expires_at IS NOT NULL")
    op.execute("CREATE INDEX indicators_type ON indicators (type)")
    op.execute("CREATE INDEX indicators_last_seen ON indicators (last_seen)")
    op.execute(
        """
        CREATE TABLE indicator_sources (
            value                text        NOT NULL REFERENCES indicators (value) ON DELETE CASCADE,
            source               text        NOT NULL,
            internal_hits        bigint      NOT NULL DEFAULT 0,
            external_hits        bigint      NOT NULL DEFAULT 0,
            first_seen           timestamptz NOT NULL,
            last_seen            timestamptz NOT NULL,
            reputation           integer,
            severity             text        NOT NULL,
            comments             text        NOT NULL DEFAULT '',
            extended_information text        NOT NULL DEFAULT '',
            tags                 text[]      NOT NULL DEFAULT '{}',
            retracted            boolean     NOT NULL DEFAULT false,
            PRIMARY KEY (value, source)
        )
        """
    )
    op.execute("CREATE INDEX indicator_sources_source ON indicator_sources (source)")
    op.execute("CREATE INDEX indicator_sources_last_seen ON indicator_sources (last_seen)")
    op.execute("CREATE INDEX indicator_sources_tags ON indicator_sources USING gin (tags)")
    # netskope-sink: what each destination list should hold.
    op.execute(
        """
        CREATE TABLE list_members (
            list_key   text             NOT NULL,
            value      text             NOT NULL,
            type       text             NOT NULL,
            priority   double precision NOT NULL,
            cost_bytes integer          NOT NULL,
            updated_at timestamptz      NOT NULL DEFAULT now(),
            PRIMARY KEY (list_key, value)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "list_members",
        "indicator_sources",
        "indicators",
        "cte_settings",
        "tags",
        "configurations",
        "api_clients",
        "consumer_offsets",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
