"""Idempotency-Key: the API's stored answers, and the sightings the rule-engine applied once.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written by the ingest-api only: one row per (client or user, key). ``status`` is NULL while the
    # request that claimed the key is in flight (until ``lease_until``); then the answer it gave.
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            principal text NOT NULL,
            key text NOT NULL,
            request_hash bytea NOT NULL,
            owner uuid NOT NULL,
            lease_until timestamptz NOT NULL,
            expires_at timestamptz NOT NULL,
            status int,
            body bytea,
            PRIMARY KEY (principal, key)
        )
        """
    )
    op.execute("CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at)")
    # Written by the rule-engine only, in its batch transactions: the ids of the sightings of keyed
    # requests already applied, so a retried request's sightings (the same ids) add no hits.
    op.execute(
        """
        CREATE TABLE applied_sightings (
            event_id uuid PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX applied_sightings_at ON applied_sightings (applied_at)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS applied_sightings")
    op.execute("DROP TABLE IF EXISTS idempotency_keys")
