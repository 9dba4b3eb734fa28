"""The allow-list (``/api/cte/allow_list``)."""
