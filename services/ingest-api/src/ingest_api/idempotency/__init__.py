"""``Idempotency-Key`` on the indicator writes: a request repeated with the same key is applied once and
answered the same (see :mod:`ingest_api.idempotency.handlers`)."""
