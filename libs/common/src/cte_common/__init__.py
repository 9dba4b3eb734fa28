"""What every service shares; libs/common imports no service.

Each module declares its public surface in ``__all__``; a name outside it (and every name starting
with ``_``) is the module's own business. The modules, and what each owns:

Vocabulary and events
- ``indicators``: indicator types and severities, their orderings, which types go to which list kind.
- ``canonical``: the canonical text of an indicator (its identity in storage and on the tenant).
- ``indicator_schema``: the indicator's API shape, once: the answer models, the plain-dict view a filter
  reads, and the catalog of filterable fields (name, kind, column, nullability, per source or not).
- ``events``: the event models on the topics (indicator events, share intents, configuration
  changes) and their JSON encoding.
- ``topics``: the topic names and specifications, and the ``cte-topics`` command that creates them.
- ``sightings``: how a source configuration (override reputation, aging criteria) shapes a sighting.
- ``keyed_events``: the event ids of a request sent with an Idempotency-Key (the same on every retry), by
  which the rule-engine applies each of its sightings once.

Decisions
- ``query``: the filter language (a package): its AST, the JSON and text forms, the SQL compiler and
  the Python evaluator.
- ``sharing``: what a sharing selects, allow-lists, priorities and the selection within a list's cap.
- ``url_list``: what a Netskope URL list can hold: the entry an indicator becomes, and why the tenant
  would refuse one (its documented grammar), decided before a push.
- ``catalog_lock_repository``: the catalog lock, which orders decisions against changes of the rules,
  sharings, allow-list and configurations that decide them.

Kafka
- ``kafka``: the broker every service builds, the producer libs/common owns on it, keyed publishing
  that waits for acks, the partitioner, and the offsets of topics (consumer lag).
- ``consumer``: batch consumers with exactly-once effects (records, decoding, dead letters).
- ``envelope``: many indicator events in one record (a versioned envelope): publishing them grouped by
  partition, and decoding records of either form into events.
- ``dlq``: the ``cte-dlq`` command: list and replay the dead-letter topic.
- ``topic_range``: reading a topic from recorded offsets to its end (recovering what a publish left).

PostgreSQL
- ``db``: the connection pool and the connection types repositories take.
- ``positions_repository``: the SQL of the consumer positions (table ``consumer_offsets``).
- ``migrate``: the ``cte-migrate`` command; ``migrations/`` holds the Alembic scripts of every table
  (scripts Alembic loads, not modules to import).

Running a service
- ``settings``: the settings every service shares (environment, prefix ``CTE_``).
- ``startup``: waiting for Kafka and PostgreSQL at start-up.
- ``service``: running a consumer service (logging, metrics endpoint, pool and broker lifecycle).
- ``logs``: structured JSON logs with the current request or batch.
- ``metrics``: the metrics every consumer and producer shares, and the /metrics endpoint.
- ``crypto``: encryption of secrets at rest (tenant API tokens).
"""
