"""A lean index set on the read model: every index kept serves a query of the API or the ager.

Each index costs every merge an insertion per new row, and every non-HOT update an insertion in every
index of the table. The ones dropped here serve no query of the Threat IoCs page or the ager, or serve it
no faster than a walk of an index kept (docs/BENCHMARKS.md, "Issue 14, items 4 and 5", has the
measurements).

Source rows no longer index a column that changes on a sighting, so their updates can stay heap-only;
the fillfactor leaves room in each page for that (pages written from now on).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# name: its definition, to recreate it on downgrade.
_DROPPED = {
    "indicators_first_seen_value": "indicators (first_seen, value)",
    "indicators_expires_at_value": "indicators (expires_at, value)",
    "indicators_type_value": "indicators (type, value)",
    "indicators_internal_hits_value": "indicators (internal_hits, value)",
    "indicators_external_hits_value": "indicators (external_hits, value)",
    "indicator_sources_last_seen": "indicator_sources (last_seen)",
    "indicator_sources_severity": "indicator_sources (severity)",
}
_SOURCES_FILLFACTOR = 85


def upgrade() -> None:
    for name in _DROPPED:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"ALTER TABLE indicator_sources SET (fillfactor = {_SOURCES_FILLFACTOR})")


def downgrade() -> None:
    op.execute("ALTER TABLE indicator_sources RESET (fillfactor)")
    for name, definition in _DROPPED.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
