"""Users, roles, tokens owned by users, sign-in lockout per user and per address, the audit log.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ALL_SCOPES = "'{me,api,cte_read,cte_write,settings_read,settings_write}'"


def upgrade() -> None:
    # ingest-api: a role is a named set of scopes; the two built-in ones cannot change.
    op.execute(
        """
        CREATE TABLE roles (
            name       text        PRIMARY KEY,
            scopes     text[]      NOT NULL,
            builtin    boolean     NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"""
        INSERT INTO roles (name, scopes, builtin) VALUES
            ('Admin', {ALL_SCOPES}, true),
            ('Read-only', '{{me,api,cte_read,settings_read}}', true)
        """
    )
    # ingest-api: users; passwords are argon2 hashes. first_login: the password must be changed before
    # the user may do anything but change it (the reference's firstLogin).
    op.execute(
        """
        CREATE TABLE users (
            username            text        PRIMARY KEY,
            password_hash       text        NOT NULL,
            role                text        NOT NULL REFERENCES roles (name) ON UPDATE CASCADE,
            first_login         boolean     NOT NULL DEFAULT true,
            active              boolean     NOT NULL DEFAULT true,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            password_changed_at timestamptz NOT NULL DEFAULT now(),
            last_login_at       timestamptz
        )
        """
    )
    # API tokens belong to the user who made them (none: the bootstrap client and older tokens).
    op.execute(
        "ALTER TABLE api_clients ADD COLUMN owner text REFERENCES users (username) ON DELETE SET NULL ON UPDATE CASCADE"
    )
    op.execute("CREATE INDEX api_clients_owner ON api_clients (owner) WHERE owner IS NOT NULL")
    # Failed sign-ins per user ('user:<name>') and per address ('address:<ip>'), shared by every API
    # replica: the lockout holds whichever replica a client reaches.
    op.execute(
        """
        CREATE TABLE signin_failures (
            subject         text        PRIMARY KEY,
            failed_attempts integer     NOT NULL DEFAULT 0,
            last_failure_at timestamptz NOT NULL DEFAULT now(),
            locked_until    timestamptz
        )
        """
    )
    # Every sign-in and every change of configuration, users and tokens: who, when, what, from where.
    op.execute(
        """
        CREATE TABLE audit_log (
            id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at       timestamptz NOT NULL DEFAULT now(),
            actor    text        NOT NULL,
            address  text,
            action   text        NOT NULL,
            resource text        NOT NULL,
            target   text,
            outcome  text        NOT NULL,
            status   integer,
            details  jsonb       NOT NULL DEFAULT '{}'
        )
        """
    )
    op.execute("CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.execute("DROP TABLE IF EXISTS signin_failures")
    op.execute("DROP INDEX IF EXISTS api_clients_owner")
    op.execute("ALTER TABLE api_clients DROP COLUMN IF EXISTS owner")
    op.execute("DROP TABLE IF EXISTS users")
    op.execute("DROP TABLE IF EXISTS roles")
