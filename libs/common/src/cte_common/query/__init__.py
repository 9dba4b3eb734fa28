"""The indicator filter language: one AST, two surface forms, two evaluators.

Surface forms (both parse to the same canonical AST, and both have a renderer that parses back to it):

- `parse_json` / `to_json`: the reference's restricted Mongo-style JSON (the `filters` parameter of
  `GET /api/cte/indicators/`, a business rule's `filters.mongo`).
- `parse_text` / `to_text`: the UI query string, e.g.
  ``sources.severity IN ("high", "critical") && active = true``.

Evaluators (written side by side per operator in `operators`: `_TEXT_OPS`, `_ORDERED_OPS`, `_ARRAY_OPS`,
`_NULL_OPS`):

- `to_sql`: a parameterised SQL boolean over ``indicators i`` (back-fill, API listing).
- `evaluate` / `compile_predicate`: the same predicate in Python over an API-shaped dict (rule engine).

Semantics shared by both evaluators:

- Text fields (`value`, `type`, per-source `source`, `comments`, `extendedInformation`, `severity`):
  equality and IN are case-insensitive exact matches; `Like` / `$regex` is a case-insensitive *substring*
  match of the literal text (never a regular expression, as in the reference, which escapes it).
- `tags` and `sharedWith` are arrays: IN means "shares at least one element", NOT IN "shares none". These
  compare case-sensitively (tag and configuration names are case-sensitive identifiers), unlike the
  reference, where every string became a case-insensitive regex; this lets PostgreSQL use the GIN index.
- A missing or NULL value matches no positive comparison, and every negative one (`!=`, `NOT IN`,
  `$ne`, `$nin`): Mongo's rule that `$ne`/`$nin` match documents without the field. In SQL this is
  ``IS DISTINCT FROM`` and ``IS NOT TRUE``; NOT of a possibly-NULL expression is also ``IS NOT TRUE``,
  so SQL's three-valued logic collapses to the same two values as Python.
- `sources.*` conditions hold when ONE source entry satisfies them (Mongo `$elemMatch`). In the text
  form each ``sources.x`` comparison is its own elemMatch, so ``sources.severity = "high" &&
  sources.tags IN ("a")`` may be satisfied by two different entries (exactly like two `$elemMatch`
  clauses in the JSON form); ``sources(severity = "high" && tags IN ("a"))`` groups conditions on one entry.
- Dates: ISO 8601 strings (date-only allowed) on date fields only; naive datetimes are UTC; the AST holds
  aware UTC datetimes. Strings on other fields are never dates (the reference turned any string dateutil
  could parse into a datetime, whatever the field).
- Numbers are integers within bigint range (integral floats such as 5.0 are accepted as 5). `null` is
  accepted only with = / != on nullable fields (`expiresAt`, per-source `reputation`).
- `severity` operands must be one of the severities (case-insensitive, stored lower-case).

Where the JSON form is narrower than the reference: no `$options`; no dotted keys (`sources.tags`) and no
`%`-for-`.` keys, write `{"sources": {"$elemMatch": ...}}`; no `destinations` / `retractionDestinations`
(sink state, not in `indicator_sources`); no `$not` on dates (write the opposite comparison); JSON null
inside a list is refused, and the string "null" stays a string (no list field here can hold null);
duplicate keys are refused. `{"$eq": "x"}` means the same as the literal "x"; severity also takes a literal.

Text form additions over the reference's grammar: ``sources(...)`` grouping, ``ANY IN`` (= IN),
``netskopeHits`` (= internalHits), ``sources.extendedInformation``, and bare `source`, `firstSeen`,
`lastSeen`, `extendedInformation`, `retracted` meaning the per-source fields like bare `severity`.

Canonical AST (what both parsers produce, and what the renderers rely on to round-trip):

- And/Or/Nor have at least two children; a single-element `$and`/`$or` is its element. Explicit nesting
  is kept (``(a && b) && c`` is And(And(a, b), c)), chains are flat (``a && b && c`` is And(a, b, c)).
- Negation is `negate(x)`: Nor(x's children) when x is an Or, else Not(x). So `$nor: [x]`, ``NOT x`` and
  a field-level `$not: {"$regex": ...}` all give Not(x), and ``NOT (a || b)`` equals `$nor: [a, b]`.
  A field-level `$not: "s"` (a plain string) is `$ne: "s"`, as in the reference.
- ``{}`` and the empty text are `MATCH_ALL` (``And(())``), accepted only as the whole filter.
- Compare.field is the API name relative to its scope: inside ElemMatch it names a source-entry field.
- Limits: at most `MAX_DEPTH` levels of nesting and `MAX_NODES` AST nodes (an IN list is one node).

Modules (this package's names below are its whole public surface):

- `ast`: the nodes, `negate`, the limits, `QueryError`, `referenced_tags`.
- `fields`: the fields a filter may name (from `cte_common.indicator_schema`), their kinds' operators,
  operand checking.
- `json_syntax` / `text_syntax`: the two surface forms, each parsed and rendered.
- `operators`: every operator on every kind of field, in SQL and in Python side by side.
- `sql`: `to_sql` and `SqlParams`. `evaluate`: `evaluate` and `compile_predicate`.
"""

from __future__ import annotations

from cte_common.query.ast import (
    MATCH_ALL,
    MAX_DEPTH,
    MAX_NODES,
    And,
    Compare,
    ElemMatch,
    Node,
    Nor,
    Not,
    Op,
    Or,
    QueryError,
    Value,
    negate,
    referenced_tags,
)
from cte_common.query.evaluate import Predicate, compile_predicate, evaluate
from cte_common.query.json_syntax import parse_json, to_json
from cte_common.query.sql import INDICATOR_ALIAS, SqlParams, to_sql
from cte_common.query.text_syntax import parse_text, to_text

__all__ = [
    "INDICATOR_ALIAS",
    "MATCH_ALL",
    "MAX_DEPTH",
    "MAX_NODES",
    "And",
    "Compare",
    "ElemMatch",
    "Node",
    "Nor",
    "Not",
    "Op",
    "Or",
    "Predicate",
    "QueryError",
    "SqlParams",
    "Value",
    "compile_predicate",
    "evaluate",
    "negate",
    "parse_json",
    "parse_text",
    "referenced_tags",
    "to_json",
    "to_sql",
    "to_text",
]
