"""Netskope alert polling: one checkpoint per configuration and alert type, owned by the netskope-sink.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: where each dataexport iterator stands (netskope_sink.alerts.handlers explains the protocol).
    # started: the iterator was seeded with start_epoch (now - initial range) and its first page taken.
    # page_digest: the digest of the last page taken, to recognise a `resend` of it.
    # pending*: a page whose sightings are being published and not yet committed here: its digest,
    # the indicator topic's end offsets before its first send (a recovery reads from there to learn
    # which of its sightings landed) and the ingest time its sightings carry (rebuilt identically).
    op.execute(
        """
        CREATE TABLE poll_checkpoints (
            configuration   text        NOT NULL,
            alert_type      text        NOT NULL CHECK (alert_type IN ('malware', 'malsite')),
            tenant          text        NOT NULL,
            index_name      text        NOT NULL,
            started         boolean     NOT NULL DEFAULT false,
            start_epoch     bigint,
            last_timestamp  bigint,
            pages           bigint      NOT NULL DEFAULT 0,
            alerts          bigint      NOT NULL DEFAULT 0,
            indicators      bigint      NOT NULL DEFAULT 0,
            page_digest     text,
            pending         boolean     NOT NULL DEFAULT false,
            pending_digest  text,
            pending_offsets jsonb,
            pending_at      timestamptz,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (configuration, alert_type)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS poll_checkpoints")
