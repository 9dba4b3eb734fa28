"""``/api/cte/pipeline``: how far behind each consumer of the pipeline is (its lag, per topic)."""
