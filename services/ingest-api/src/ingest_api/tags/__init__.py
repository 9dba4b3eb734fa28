"""Tags (``/api/cte/tags``)."""
