"""The hot path's text keys compared in code point order (COLLATE "C").

Under a database's default collation (C.UTF-8 on our stack, en_US.utf8 in the postgres image) every
comparison of two text keys in an index goes through the C library's strcoll, both strings copied to
terminated buffers first; under "C" it is a memcmp. Equality is the same under both (both are
deterministic); only order can differ, and the byte order of UTF-8 is the code point order, which is
what glibc's C.UTF-8 sorts by already (and what the sink's cut uses, written COLLATE "C").

Measured by bench/key_collation.py (400,000 new URL values, the two revisions interleaved batch by
batch): 3.7 and 3.8 µs less backend CPU per value in two runs, over the rule-engine's reads and COPYs,
the sink's intents and a push of the whole list, 4 and 7 percent of those statements. Under a fuller
locale such as en_US.utf8, where strcoll does more, the difference should be larger; not measured.

The columns keep their type, so no table is rewritten; every index on them is rebuilt, the tables
locked meanwhile: under 7 s for 800,000 indicators with as many source rows, decisions and list members.

Case-insensitive search (cte_common.query) lowers ``value COLLATE "default"``, as before, so its
Unicode case mapping is the database's, unchanged; the two expression indexes that serve it are
rebuilt on that expression.

Views that read the columns are dropped and created again from their own definitions (PostgreSQL
refuses to change the type of a column a view reads).

Revision ID: 0026
Revises: 0025
"""

from alembic import op
from sqlalchemy import text

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

# Each table's text columns in an index that the pipeline inserts into or probes per value.
_KEYS = {
    "indicators": ("value",),
    "indicator_sources": ("value", "source"),
    "share_decisions": ("value",),
    "list_members": ("list_key", "value"),
    "list_changes": ("list_key", "value"),
    "list_pushed": ("list_key", "value"),
    "list_outcomes": ("list_key", "value"),
    "list_foreign": ("list_key", "value"),
    "list_claims": ("list_key",),
    "list_state": ("list_key",),
    "list_push_cuts": ("list_key",),
    "intent_journal": ("list_key",),
    "sharings": ("list_key",),
}
_LOWER_INDEXES = {
    "indicators_value_lower": ("indicators", "value"),
    "indicator_sources_source_lower": ("indicator_sources", "source"),
}


def _retype(collation: str, lower_expression: str) -> None:
    bind = op.get_bind()
    views = bind.execute(
        text(
            "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c "
            "WHERE c.relkind = 'v' AND c.relnamespace = current_schema()::regnamespace ORDER BY c.oid"
        )
    ).all()
    for name, _ in reversed(views):
        op.execute(f'DROP VIEW "{name}"')
    for index in _LOWER_INDEXES:
        op.execute(f"DROP INDEX {index}")
    for table, columns in _KEYS.items():
        alters = ", ".join(f'ALTER COLUMN {c} TYPE text COLLATE "{collation}"' for c in columns)
        op.execute(f"ALTER TABLE {table} {alters}")
    for index, (table, column) in _LOWER_INDEXES.items():
        op.execute(f"CREATE INDEX {index} ON {table} (({lower_expression.format(column=column)}))")
    for name, definition in views:
        op.execute(f'CREATE VIEW "{name}" AS {definition}')


def upgrade() -> None:
    _retype("C", 'lower(({column} COLLATE "default"))')


def downgrade() -> None:
    _retype("default", "lower({column})")
    # The sink's order index keeps its values in code point order whatever the column's collation
    # (migration 0012); rebuilt from the column above, it would have taken the default one.
    op.execute("DROP INDEX list_members_cut")
    op.execute(
        'CREATE INDEX list_members_cut ON list_members (list_key, (-priority), value COLLATE "C") '
        "INCLUDE (priority, cost_bytes, type)"
    )
