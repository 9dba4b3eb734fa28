"""SQL text lives only in repository modules.

The rule: in ``services/*/src``, ``libs/*/src`` and ``tools/*/src``, a string that reads as SQL may
appear only in

- a repository module: a file named ``repository.py`` or ``<something>_repository.py``;
- a migration: any file under a ``migrations`` folder;
- the filter language's SQL emitter, ``cte_common/query/operators.py`` and ``cte_common/query/sql.py``.
  Compiling a filter to a parameterised SQL boolean is what the filter language is for, and each
  operator is written in SQL and in Python side by side so the two evaluators cannot drift apart. The
  emitter produces boolean expressions (subqueries included), never statements: the repositories put
  them into their own statements, and every value goes into bind parameters. These two modules are
  allowed by name, nothing else under ``cte_common/query/`` is.

Strings are read with Python's ``ast``: string constants (implicit concatenation included), f-strings
(each ``{...}`` read as the placeholder ``0``) and ``+`` concatenations of them, taken as one text.
Docstrings are skipped, and comments are not strings. A text reads as SQL when it holds a statement or
clause the detector below knows, with its keywords in upper case as the project writes SQL (English
prose says "select the rows from the list", never "SELECT ... FROM"): SELECT ... FROM, a string that
starts with SELECT, INSERT INTO, UPDATE ... SET, DELETE FROM, WITH ... AS (, CREATE/ALTER/DROP of a
table, index or other object, COPY ... FROM/TO, ON CONFLICT, JOIN ... ON, WHERE with a comparison,
ORDER BY, GROUP BY, an aggregate over DISTINCT; and, in any case, a comparison with a bind parameter
(``= $1``, ``= ANY ($2``), a typed bind parameter (``$3::text``) or a comparison of two qualified
columns (``s.value = i.value``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = ("services/*/src", "libs/*/src", "tools/*/src")
# The filter language's SQL emitter (see the module docstring for why).
SQL_EMITTER = frozenset(
    {
        "libs/common/src/cte_common/query/operators.py",
        "libs/common/src/cte_common/query/sql.py",
    }
)

_NAME = r"[\w.\"]+"  # an identifier, schema-qualified or quoted; an f-string placeholder reads as 0
SQL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.DOTALL))
    for name, pattern in (
        ("SELECT ... FROM", r"\bSELECT\s+(?:DISTINCT\s+)?\S.*?\sFROM\s+[\w(\"$]"),
        ("SELECT statement", r"^\s*\(?SELECT\s+\S"),
        ("INSERT INTO", rf"\bINSERT\s+INTO\s+{_NAME}"),
        ("UPDATE ... SET", rf"\bUPDATE\s+(?:ONLY\s+)?{_NAME}(?:\s+(?:AS\s+)?\w+)?\s+SET\s"),
        ("DELETE FROM", rf"\bDELETE\s+FROM\s+{_NAME}"),
        ("WITH ... AS (", r"\bWITH\s+(?:RECURSIVE\s+)?\w+(?:\s*\([^)]*\))?\s+AS\s+(?:(?:NOT\s+)?MATERIALIZED\s+)?\("),
        (
            "DDL",
            r"\b(?:CREATE|ALTER|DROP)\s+(?:UNIQUE\s+|TEMP\s+|TEMPORARY\s+|UNLOGGED\s+|OR\s+REPLACE\s+)*"
            r"(?:TABLE|INDEX|VIEW|MATERIALIZED\s+VIEW|SEQUENCE|TYPE|FUNCTION|TRIGGER|EXTENSION|SCHEMA)\b",
        ),
        ("COPY ... FROM/TO", rf"\bCOPY\s+{_NAME}(?:\s*\([^)]*\))?\s+(?:FROM|TO)\s"),
        ("ON CONFLICT", r"\bON\s+CONFLICT\b"),
        ("JOIN ... ON", rf"\bJOIN\s+(?:LATERAL\s+)?{_NAME}(?:\s+(?:AS\s+)?\w+)?\s+(?:ON|USING)\b"),
        ("WHERE", r"\bWHERE\s+(?:NOT\s+)?[\w.()]+\s*(?:=|<>|!=|<=|>=|<|>|&&|@>|IN\b|IS\b|LIKE\b|ILIKE\b)"),
        ("ORDER BY", r"\bORDER\s+BY\s+\S"),
        ("GROUP BY", r"\bGROUP\s+BY\s+\S"),
        ("bind parameter", r"(?i:[\w.)\]]\s*(?:=|<>|!=|<=|>=|<|>|&&|@>|<@)\s*(?:any\s*\(\s*)?\$\d+\b)"),
        ("typed bind parameter", r"\$\d+::\w"),
        ("column comparison", r"\b[a-z_]\w*\.[a-z_]\w*\s*(?:=|<>|<=|>=)\s*[a-z_]\w*\.[a-z_]\w*\b"),
        ("DISTINCT aggregate", r"\b\w+\(\s*DISTINCT\s"),
    )
)


def sql_in(text: str) -> str | None:
    """The name of the first SQL construct ``text`` holds, or None."""
    for name, pattern in SQL_PATTERNS:
        if pattern.search(text):
            return name
    return None


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    construct: str
    text: str

    def __str__(self) -> str:
        snippet = " ".join(self.text.split())
        return f"{self.path}:{self.line}: {self.construct}: {snippet[:100]}"


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _text(node: ast.expr) -> str | None:
    """The text of a string expression (constant, f-string, + of those), or None for anything else."""
    match node:
        case ast.Constant(value=str() as value):
            return value
        case ast.Constant(value=bytes() as value):
            return value.decode("latin-1")
        case ast.JoinedStr(values=parts):
            return "".join(p.value if isinstance(p, ast.Constant) and isinstance(p.value, str) else "0" for p in parts)
        case ast.BinOp(left=left, op=ast.Add(), right=right):
            left_text, right_text = _text(left), _text(right)
            if left_text is None and right_text is None:
                return None
            return (left_text or "0") + (right_text or "0")
    return None


def _string_expressions(tree: ast.AST) -> Iterator[tuple[ast.expr, str]]:
    """Each outermost string expression with its text; the parts of a concatenation are not repeated."""
    skip = _docstrings(tree)
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.expr) and id(node) not in skip:
            text = _text(node)
            if text is not None:
                yield node, text
                continue
        stack.extend(ast.iter_child_nodes(node))


def find_sql(source: str, path: str = "<source>") -> list[Finding]:
    findings = []
    for node, text in _string_expressions(ast.parse(source)):
        construct = sql_in(text)
        if construct is not None:
            findings.append(Finding(path, node.lineno, construct, text))
    return sorted(findings, key=lambda f: f.line)


def allowed(relative: str) -> bool:
    path = Path(relative)
    return (
        path.name == "repository.py"
        or path.name.endswith("_repository.py")
        or "migrations" in path.parts
        or relative in SQL_EMITTER
    )


def source_files() -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for pattern in SOURCE_ROOTS for path in ROOT.glob(f"{pattern}/**/*.py"))


# ---------------------------------------------------------------------------- the rule


def test_sql_lives_only_in_repository_modules() -> None:
    findings = [
        finding
        for relative in source_files()
        if not allowed(relative)
        for finding in find_sql((ROOT / relative).read_text(encoding="utf-8"), relative)
    ]
    assert not findings, "SQL outside repository modules (move it into the module's repository):\n" + "\n".join(
        str(f) for f in findings
    )


def test_the_walk_sees_every_source_tree_and_the_allowed_modules_exist() -> None:
    files = source_files()
    for top in ("services/ingest-api/src/", "services/rule-engine/src/", "libs/common/src/", "tools/fake-tenant/src/"):
        assert any(f.startswith(top) for f in files), top
    assert set(files) >= SQL_EMITTER, "the filter language's SQL emitter moved: update SQL_EMITTER"
    # The allowed files do hold SQL, so the rule is not vacuous for them.
    for relative in [*sorted(SQL_EMITTER), "libs/common/src/cte_common/positions_repository.py"]:
        assert find_sql((ROOT / relative).read_text(encoding="utf-8")), relative


def test_allowed_paths() -> None:
    assert allowed("services/rule-engine/src/rule_engine/repository.py")
    assert allowed("services/ingest-api/src/ingest_api/indicators/repository.py")
    assert allowed("libs/common/src/cte_common/positions_repository.py")
    assert allowed("libs/common/src/cte_common/migrations/versions/0001_initial.py")
    assert allowed("libs/common/src/cte_common/query/sql.py")
    assert not allowed("libs/common/src/cte_common/query/text_syntax.py")
    assert not allowed("services/ingest-api/src/ingest_api/handlers.py")
    assert not allowed("services/ingest-api/src/ingest_api/repository_helpers.py")


# ---------------------------------------------------------------------------- the detector

SQL = [
    "SELECT value, type FROM indicators WHERE value = ANY($1::text[])",
    "\nSELECT topic, partition, next_offset FROM consumer_offsets\nWHERE consumer = $1\nFOR UPDATE\n",
    "SELECT count(*) FROM indicators",
    "SELECT pg_advisory_xact_lock(42)",
    "(SELECT 1)",
    "INSERT INTO lists (key, bytes) VALUES ($1, $2)",
    'INSERT INTO "sharing" DEFAULT VALUES',
    "UPDATE consumer_offsets AS c SET next_offset = x.o",
    "UPDATE lists SET due = true",
    "DELETE FROM allow_list WHERE id = $1",
    "WITH due AS (SELECT value FROM indicators) SELECT * FROM due",
    "WITH RECURSIVE t(n) AS (VALUES (1)) SELECT n FROM t",
    "CREATE TABLE t (id int)",
    "CREATE UNIQUE INDEX i ON t (x)",
    "ALTER TABLE lists ADD COLUMN cap int",
    "DROP INDEX IF EXISTS i",
    "COPY indicators (value) FROM STDIN",
    "COPY indicators TO STDOUT",
    " ON CONFLICT (value) DO NOTHING",
    " ORDER BY last_seen DESC",
    " GROUP BY source",
    "i.value > $3",
    "s.tags && $2",
    "lower(value) = any($4)",
    "$1::timestamptz",
    "JOIN indicator_sources s ON s.value = i.value",
    "LEFT JOIN lists l USING (key)",
    " WHERE i.active IS TRUE",
    "s.value = i.value",
    "count(DISTINCT i.value)",
]
PROSE = [
    "select the rows from the list",
    "Select entries from a list",
    "Update the list, then set its cap",
    "delete from the tenant what it no longer holds",
    "insert into the queue",
    "with the records as (roughly) they came",
    "order by priority",
    "sorted by severity, grouped by source",
    "copy the values to the tenant",
    "DELETE",
    "UPDATE",
    "SELECT",
    "GET, POST, DELETE /api/cte/indicators",
    "a conflict on the tenant: %s",
    "costs $5 per month",
    "%s records from %s",
    "drop table-like structures",
    "Create a table of contents",
    "ON",
    " AND ",
    "join the group, then wait where it is",
    "settings.x is read from the environment",
    "version 1.2 = 1.2",
    "a = b",
    "distinct values from the list",
]


@pytest.mark.parametrize("text", SQL)
def test_detector_finds_sql(text: str) -> None:
    assert sql_in(text), text


@pytest.mark.parametrize("text", PROSE)
def test_detector_leaves_prose_alone(text: str) -> None:
    assert sql_in(text) is None, (text, sql_in(text))


def test_find_sql_reads_f_strings_and_concatenations_and_skips_docstrings() -> None:
    source = '''
"""Module docstring: SELECT value FROM indicators."""


def f(table: str, n: int) -> str:
    """INSERT INTO anything (a docstring)."""
    log.info("deleted %d rows from the list", n)
    a = f"UPDATE {table} SET due = true"
    b = "SELECT value " + "FROM " + table
    c = (
        "DELETE FROM lists "
        "WHERE key = $1"
    )
    d = f"i.value = ${n}"
    return a + b + c + d


class C:
    """DROP TABLE in a class docstring."""

    sql = "ON CONFLICT (value) DO NOTHING"
'''
    found = [(f.line, f.construct) for f in find_sql(source)]
    assert found == [
        (8, "UPDATE ... SET"),
        (9, "SELECT ... FROM"),
        (11, "DELETE FROM"),
        (14, "bind parameter"),
        (21, "ON CONFLICT"),
    ], found
