"""Plugin configurations (``/api/cte/configurations``)."""
