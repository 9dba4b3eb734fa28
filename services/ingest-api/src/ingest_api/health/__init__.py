"""Liveness and readiness (``/healthz``, ``/readyz``): the process serves; Kafka and PostgreSQL answer."""
