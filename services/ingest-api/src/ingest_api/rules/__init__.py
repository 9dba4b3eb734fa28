"""Business rules (``/api/cte/business_rules``, with their test and clone) and re-evaluations."""
