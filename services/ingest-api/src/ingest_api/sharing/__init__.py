"""Sharing configurations (``/api/cte/sharing``), with their dry run."""
