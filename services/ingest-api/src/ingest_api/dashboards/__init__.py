"""Dashboards (``/api/cte/dashboards/``, ``/api/cte/dashboard/pull``): counts over the read model."""
