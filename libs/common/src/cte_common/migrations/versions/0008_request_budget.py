"""The tenants' request budgets, shared by every netskope-sink replica.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # netskope-sink: when each recent call to a tenant's API went out, by the database's clock, so that
    # replicas on several machines count one sliding window. The row lock serialises the replicas.
    op.execute(
        """
        CREATE TABLE tenant_request_budget (
            tenant text NOT NULL,
            api text NOT NULL,
            sent timestamptz[] NOT NULL DEFAULT '{}',
            PRIMARY KEY (tenant, api)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS tenant_request_budget")
