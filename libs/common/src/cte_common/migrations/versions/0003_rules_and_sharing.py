"""Business rules, allow-lists and sharing configurations, and the rule-engine's sharing decisions.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ingest-api: business rules. `filter` is the canonical JSON form of the rule's query; `filter_text`
    # the readable form it was written in, when it was given that way.
    op.execute(
        """
        CREATE TABLE business_rules (
            name        text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
            filter      jsonb       NOT NULL,
            filter_text text,
            exceptions  jsonb       NOT NULL DEFAULT '[]',
            muted       boolean     NOT NULL DEFAULT false,
            unmute_at   timestamptz,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO business_rules (name, filter, filter_text) VALUES ('All', '{}', '')")
    # ingest-api: allow-list entries, applied before any sharing decision.
    op.execute(
        """
        CREATE TABLE allow_list (
            id         bigserial   PRIMARY KEY,
            kind       text        NOT NULL CHECK (kind IN ('exact', 'suffix', 'cidr', 'regex')),
            pattern    text        NOT NULL CHECK (length(pattern) BETWEEN 1 AND 2048),
            comment    text        NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (kind, pattern)
        )
        """
    )
    # ingest-api: sharing configurations (source, rule, destination, target). list_key names the
    # destination list on its tenant; one sharing per list.
    op.execute(
        """
        CREATE TABLE sharings (
            id          bigserial   PRIMARY KEY,
            source      text        NOT NULL REFERENCES configurations (name) ON UPDATE CASCADE ON DELETE CASCADE,
            rule        text        NOT NULL REFERENCES business_rules (name) ON UPDATE CASCADE,
            destination text        NOT NULL REFERENCES configurations (name) ON UPDATE CASCADE ON DELETE CASCADE,
            action      text        NOT NULL CHECK (action IN ('url', 'file')),
            parameters  jsonb       NOT NULL,
            list_key    text        NOT NULL UNIQUE,
            priority    text        NOT NULL DEFAULT 'lastSeen'
                                    CHECK (priority IN ('lastSeen', 'severity', 'reputation', 'sources')),
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # rule-engine: which indicators each sharing currently selects, with the priority and byte cost
    # last announced to the sink. Only changes of these produce share intents.
    op.execute(
        """
        CREATE TABLE share_decisions (
            sharing_id bigint           NOT NULL,
            value      text             NOT NULL,
            list_key   text             NOT NULL,
            priority   double precision NOT NULL,
            cost_bytes integer          NOT NULL,
            PRIMARY KEY (sharing_id, value)
        )
        """
    )
    op.execute("CREATE INDEX share_decisions_value ON share_decisions (value)")
    # rule-engine: allow-list matches, per entry.
    op.execute(
        """
        CREATE TABLE allow_list_hits (
            entry_id    bigint      PRIMARY KEY,
            hits        bigint      NOT NULL DEFAULT 0,
            last_hit_at timestamptz
        )
        """
    )
    # rule-engine: re-evaluations of the stored indicators after a rule, allow-list or sharing change.
    # after_value is the keyset cursor, committed with each batch's decisions: a restart resumes there.
    op.execute(
        """
        CREATE TABLE reevaluations (
            id          bigserial   PRIMARY KEY,
            reason      text        NOT NULL,
            requested_at timestamptz NOT NULL DEFAULT now(),
            started_at  timestamptz,
            finished_at timestamptz,
            after_value text,
            processed   bigint      NOT NULL DEFAULT 0,
            total       bigint
        )
        """
    )


def downgrade() -> None:
    for table in ("reevaluations", "allow_list_hits", "share_decisions", "sharings", "allow_list", "business_rules"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
