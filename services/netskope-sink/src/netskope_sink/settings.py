from __future__ import annotations

from pydantic import Field, model_validator

from cte_common.db import BATCH_WRITER_SETTINGS
from cte_common.settings import CommonSettings


class Settings(CommonSettings):
    consumer_group: str = "netskope-sink"
    sink_metrics_port: int = 9102
    batch_max_records: int = 5000
    batch_timeout_ms: int = 100
    # What one fetch takes from a partition. A list's intents share one partition (keyed by the list)
    # in envelopes of up to 256 KiB, so the default 1 MiB would hold a sink that has fallen behind to
    # about four envelopes a batch.
    batch_partition_fetch_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # How often due lists are looked for; a list is pushed at most this long after its intents.
    flush_interval_seconds: float = Field(default=1.0, gt=0)
    # Streams of lists pushed at once (a tenant's URL lists are one stream, its file hash lists another).
    # A stream holds up to two of the pool's connections (its round's, and one to record a failure), so
    # twice this must stay below db_pool_max, which the share-intent consumer and the alert poller share.
    flush_concurrency: int = Field(default=2, ge=1)
    # After a successful push a list waits at least this long before its next one: intents that arrive
    # meanwhile are gathered into one push (0: pushed as soon as intents arrive).
    push_min_interval_seconds: float = Field(default=0.0, ge=0)
    # A file hash list is replaced whole at each push (REST v1 has no other call): its next push waits
    # at least this many times as long as the last one took, so a list fed without a pause is not
    # rewritten back to back (at 1, its pushes take at most half of its stream's time; 0: pushed as soon
    # as intents arrive). A lone change after a pause is pushed at once.
    file_replace_pacing: float = Field(default=1.0, ge=0)
    # PostgreSQL's temp_buffers on the sink's connections, in MB: a push works out its changes in
    # session-local tables (its changes read once, and what it sends or takes out, with their indexes:
    # about 450 bytes a change), kept in memory up to this size and written to disk past it.
    # PostgreSQL's default, 8 MB, held a push of some 18,000 changes; a list at its cap fed without a
    # pause pushes more (bench/notes.md, "a push's work tables in memory"). Taken by a connection only
    # as its pushes need it.
    push_work_buffers_mb: int = Field(default=64, ge=1)
    # A URL list at its cap fed without a pause (trimmed twice within twice this long) keeps room for
    # this many seconds of its inflow below its cap, at most cap_reserve_max_share of it, so that most of
    # its pushes are appends rather than replaces of the whole list; it is filled up to its cap once it
    # has had no change for cap_settle_seconds (netskope_sink.lists.domain.CapReserve). 0: off. (A list
    # fed without a pause is pushed every fraction of a second: two seconds without a change is a pause.)
    cap_reserve_seconds: float = Field(default=10.0, ge=0)
    cap_reserve_max_share: float = Field(default=0.1, ge=0, lt=1)
    cap_settle_seconds: float = Field(default=2.0, ge=0)
    # Per tenant: REST v1 allows 24 requests per 5 seconds; v2 budgets are set per tenant by Netskope.
    v1_requests: int = Field(default=24, ge=1)
    v1_period_seconds: float = Field(default=5.0, gt=0)
    v2_requests: int = Field(default=20, ge=1)
    v2_period_seconds: float = Field(default=1.0, gt=0)
    # Retries of one call before the flush gives up for now (the list stays due and is retried).
    request_attempts: int = Field(default=5, ge=1)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    backoff_max_seconds: float = Field(default=60.0, gt=0)
    # A list the tenant refuses (other than entry by entry) is retried after this, doubling up to the
    # maximum (the provider plugin's 15 minutes), or at once when its content or configuration changes.
    refused_backoff_initial_seconds: float = Field(default=30.0, gt=0)
    refused_backoff_max_seconds: float = Field(default=900.0, gt=0)
    # A URL list is read back before its first push, after a call whose answer was lost, and this often.
    list_read_back_interval_seconds: float = Field(default=3600.0, gt=0)
    # Netskope's documented limits per tenant: URL-list entries across all its URL lists, regex entries,
    # and the bytes of one upload.
    tenant_url_entries_max: int = Field(default=300_000, ge=1)
    tenant_regex_entries_max: int = Field(default=1_000, ge=0)
    upload_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    # Alert polling (Netskope configurations with enablePolling): how often the poller looks for
    # iterators that are due (the tenant's wait_time after their last page has passed), how many pages
    # one iterator may take per round, how many iterators are polled at once.
    poll_interval_seconds: float = Field(default=2.0, gt=0)
    poll_max_pages: int = Field(default=50, ge=1)
    poll_concurrency: int = Field(default=2, ge=1)
    # Netskope allows 4 requests per second per dataexport endpoint (each alert type's), counted over
    # every sink replica like the API budgets; a wait_time longer than poll_max_wait_seconds is cut.
    poll_endpoint_requests: int = Field(default=4, ge=1)
    poll_endpoint_period_seconds: float = Field(default=1.0, gt=0)
    poll_max_wait_seconds: float = Field(default=300.0, ge=0)
    # The reference waits 120 s for a dataexport page.
    poll_request_timeout_seconds: float = Field(default=120.0, gt=0)
    # Recovery of an interrupted page reads the indicator topic from where the page's sends started.
    poll_recovery_timeout_seconds: float = Field(default=60.0, gt=0)
    # After a failed publish, sends still queued in the producer may land until its request timeout
    # (30 s): the page is recovered only after that, so the recovery sees every send that landed.
    poll_publish_settle_seconds: float = Field(default=35.0, ge=0)

    def pool_settings(self) -> dict[str, str]:
        """PostgreSQL's settings on each connection of the sink's pool."""
        return {**BATCH_WRITER_SETTINGS, "temp_buffers": f"{self.push_work_buffers_mb}MB"}

    @model_validator(mode="after")
    def _room_for_the_streams(self) -> Settings:
        # Streams that each hold one connection and wait for a second could take the whole pool.
        if 2 * self.flush_concurrency >= self.db_pool_max:
            raise ValueError(
                f"flush_concurrency ({self.flush_concurrency}) needs at most two of the pool's connections "
                f"per stream and one left for the rest: raise db_pool_max ({self.db_pool_max}) above "
                f"{2 * self.flush_concurrency} or lower flush_concurrency"
            )
        return self
