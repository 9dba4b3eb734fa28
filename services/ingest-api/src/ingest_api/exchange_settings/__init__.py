"""Threat Exchange settings (``/api/settings/cte``)."""
