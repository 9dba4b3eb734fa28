"""Indicators (``/api/cte/indicators``): writes as events, reads from the read model."""
