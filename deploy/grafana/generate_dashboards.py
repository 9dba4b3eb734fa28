"""Writes the Grafana dashboards of deploy/grafana/dashboards/ (standard library only).

    uv run python deploy/grafana/generate_dashboards.py          # rewrite the JSON files
    uv run python deploy/grafana/generate_dashboards.py --check  # exit 1 when a file is out of date

The JSON files are what Grafana provisions (deploy/grafana/provisioning/dashboards/dashboards.yml);
this script is their source: edit it, run it, commit both. tests/unit/test_observability_files.py
fails when the files and the script disagree, and tests/integration/test_observability.py runs every
query against a real Prometheus scraping the running services.

Queries use Grafana's ``$__rate_interval`` and the dashboard variables (``$job``, ``$list``), whose
"All" value is the regex ``.*``. Counters that only move when something goes wrong end in
``or vector(0)``, so their panels show 0 instead of "No data" on a healthy system.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Our scrape jobs (deploy/prometheus/prometheus-*.yml).
JOBS = "ingest-api|rule-engine|netskope-sink|ager"
RATE = "$__rate_interval"
# Netskope's entry cap per list (cte_common.sharing.select_within_cap).
ENTRY_CAP = 300000


@dataclass
class Target:
    expr: str
    legend: str = ""


@dataclass
class Panel:
    title: str
    targets: list[Target]
    description: str
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    min: float | None = 0
    max: float | None = None
    # (value, colour) steps after the base green; absolute values.
    thresholds: list[tuple[float, str]] = field(default_factory=list)
    mappings: list[dict[str, Any]] = field(default_factory=list)
    stack: bool = False


def _target_json(t: Target, ref: str, instant: bool) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "expr": t.expr,
        "legendFormat": t.legend or "__auto",
        "range": not instant,
        "instant": instant,
        "editorMode": "code",
    }


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    instant = p.kind in ("stat", "bargauge")
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in p.thresholds]
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "thresholds" if p.kind != "timeseries" else "palette-classic"},
        "mappings": p.mappings,
    }
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    options: dict[str, Any]
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.kind == "stat":
        options = {
            "reduceOptions": reduce,
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    elif p.kind == "bargauge":
        options = {
            "reduceOptions": reduce,
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
        }
    else:  # pragma: no cover - a typo in this file
        raise ValueError(f"unknown panel kind {p.kind}")
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "targets": [_target_json(t, chr(ord("A") + i), instant) for i, t in enumerate(p.targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "hide": 0,
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]) -> Any:
    out, x, y, row_height = [], 0, 0, 0
    for pid, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_height = 0, y + row_height, 0
        out.append(_panel_json(p, pid, x, y))
        x += p.width
        row_height = max(row_height, p.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["cte"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["cte"],
                "asDropdown": False,
                "title": "Threat Exchange",
                "icon": "external link",
            }
        ],
        "templating": {"list": variables},
        "panels": out,
    }


def _p95(metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile(0.95, sum by ({by}le) (rate({metric}_bucket{selector}[{RATE}])))"


# ---------------------------------------------------------------------------- pipeline overview


def pipeline_overview() -> Any:
    panels = [
        Panel(
            "Indicators accepted /s",
            [Target(f"sum(rate(cte_ingest_indicators_accepted_total[{RATE}]))", "accepted")],
            "Indicators the API accepted (durable in Kafka) per second, every type.",
            kind="stat",
            unit="cps",
            width=6,
            height=4,
        ),
        Panel(
            "Services up",
            [Target(f'sum(up{{job=~"{JOBS}"}})', "up")],
            "Scrape targets of the four services that answer. Fewer than you run: see the service health dashboard.",
            kind="stat",
            width=6,
            height=4,
        ),
        Panel(
            "Records behind (every consumer)",
            [Target("sum(cte_consumer_lag_records)", "lag")],
            "Records between each consumer's position and its partitions' high watermarks, summed.",
            kind="stat",
            width=6,
            height=4,
            thresholds=[(1000, "orange"), (100000, "red")],
        ),
        Panel(
            "Dead letters (24 h)",
            [Target('sum(increase(cte_consumer_records_total{outcome="dead_letter"}[24h])) or vector(0)', "dead")],
            "Records set aside on the dead-letter topic because they could not be decoded.",
            kind="stat",
            width=6,
            height=4,
            thresholds=[(1, "red")],
        ),
        Panel(
            "Indicators accepted by type",
            [Target(f"sum by (type) (rate(cte_ingest_indicators_accepted_total[{RATE}]))", "{{type}}")],
            "Per second, by indicator type.",
            unit="cps",
            stack=True,
        ),
        Panel(
            "Indicators rejected by reason",
            [
                Target(
                    f"sum by (reason) (rate(cte_ingest_indicators_rejected_total[{RATE}])) or vector(0)", "{{reason}}"
                ),
                Target(f"sum by (field) (rate(cte_ingest_ignored_fields_total[{RATE}]))", "ignored field {{field}}"),
                Target(f"sum(rate(cte_keyed_sightings_repeated_total[{RATE}]))", "repeat skipped (Idempotency-Key)"),
            ],
            "Items the API refused with a 4xx, per second, by reason (validation is all or nothing per batch); "
            "input fields the reference ignores, ignored here too, by name; sightings of a retried request sent "
            "with an Idempotency-Key that the rule-engine skipped as already applied.",
            unit="cps",
        ),
        Panel(
            "Events consumed per topic",
            [Target(f"sum by (handler) (rate(faststream_received_messages_total[{RATE}]))", "{{handler}}")],
            "Records the consumers received, per second, by topic (FastStream's middleware).",
            unit="cps",
        ),
        Panel(
            "Events published per topic",
            [
                Target(
                    f'sum by (topic) (rate(cte_kafka_published_records_total{{status="success"}}[{RATE}]))',
                    "{{topic}}",
                )
            ],
            "Records acknowledged by Kafka, per second, by topic: the API's indicator and configuration "
            "events, the rule-engine's share intents, the ager's expire commands, the sink's tags.",
            unit="cps",
        ),
        Panel(
            "Consumer lag",
            [Target("sum by (consumer) (cte_consumer_lag_records)", "{{consumer}}")],
            "Records behind the high watermark, by consumer (summed over partitions), as of its last batch.",
        ),
        Panel(
            "Records by consumer and outcome",
            [
                Target(
                    f"sum by (consumer, outcome) (rate(cte_consumer_records_total[{RATE}]))", "{{consumer}} {{outcome}}"
                )
            ],
            "applied, duplicate (applied before: a redelivery), dead_letter; per second.",
            unit="cps",
        ),
        Panel(
            "Mean batch size",
            [
                Target(
                    f"sum by (consumer) (rate(cte_consumer_batch_records_sum[{RATE}]))"
                    f" / sum by (consumer) (rate(cte_consumer_batch_records_count[{RATE}]))",
                    "{{consumer}}",
                )
            ],
            "Records per batch a consumer received. Large batches mean the consumer is catching up.",
        ),
        Panel(
            "Batch duration p95",
            [Target(_p95("cte_consumer_batch_duration_seconds", "consumer, "), "{{consumer}}")],
            "Time to apply one batch, database commit included (95th percentile).",
            unit="s",
        ),
        Panel(
            "Read model: indicators written and merged",
            [
                Target(f"sum(rate(cte_read_model_indicators_written_total[{RATE}]))", "written"),
                Target(f"sum(rate(cte_read_model_merges_total[{RATE}]))", "merged into an existing indicator"),
            ],
            "Indicator rows the rule-engine created or changed, per second.",
            unit="cps",
        ),
        Panel(
            "Read model write latency",
            [
                Target(_p95("cte_read_model_write_duration_seconds", ""), "p95"),
                Target(
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(cte_read_model_write_duration_seconds_bucket[{RATE}])))",
                    "p50",
                ),
            ],
            "Time to load, merge and write one batch in PostgreSQL.",
            unit="s",
        ),
        Panel(
            "Share intents published",
            [
                Target(f"sum by (action) (rate(cte_share_intents_published_total[{RATE}]))", "{{action}}"),
                Target(f"sum(rate(cte_share_intents_republished_total[{RATE}]))", "republished (not committed)"),
            ],
            "Decisions that changed: an indicator enters (add) or leaves (remove) a list; per second. "
            "Republished: the committed decisions published again for the intents of a transaction that did "
            "not commit (after a crash or a lost database connection).",
            unit="cps",
        ),
        Panel(
            "Re-evaluated indicators /s",
            [
                Target(f"sum(rate(cte_reevaluated_indicators_total[{RATE}]))", "re-evaluated"),
                Target("sum(cte_reevaluation_pending)", "requests pending"),
            ],
            "Indicators decided again after a change of rule, sharing, allow-list or configuration, and the "
            "re-evaluation requests not finished yet.",
            unit="cps",
        ),
        Panel(
            "Expire and delete commands published /s",
            [
                Target(f"sum(rate(cte_ager_expire_commands_total[{RATE}]))", "expire"),
                Target(f"sum(rate(cte_ager_delete_commands_total[{RATE}]))", "delete"),
            ],
            "Indicators the ager found due and asked the rule-engine to expire; inactive indicators that left "
            "every list and are deleted (when the deleteInactiveIndicators setting is on).",
            unit="cps",
        ),
        Panel(
            "Expiry lag (due time to expire command)",
            [
                Target(
                    f"histogram_quantile(0.99, sum by (le) (rate(cte_ager_dispatch_lag_seconds_bucket[{RATE}])))",
                    "p99",
                ),
                Target(
                    f"histogram_quantile(0.5, sum by (le) (rate(cte_ager_dispatch_lag_seconds_bucket[{RATE}])))",
                    "p50",
                ),
                Target(
                    f"histogram_quantile(0.99, sum by (le) (rate(cte_expiry_apply_lag_seconds_bucket[{RATE}])))",
                    "applied p99",
                ),
            ],
            "How late expire commands go out after the indicator fell due, and (applied) how late the expiry "
            "takes effect in the read model. Alert above a minute.",
            unit="s",
            thresholds=[(60, "red")],
        ),
    ]
    return dashboard(
        "cte-pipeline-overview",
        "Threat Exchange / Pipeline overview",
        "Are indicators flowing, and where do they wait?",
        panels,
        [],
    )


# ---------------------------------------------------------------------------- lists and pushes


def netskope_lists() -> Any:
    sel = '{list=~"$list"}'
    panels = [
        Panel(
            "Fill against the byte cap",
            [
                Target(
                    f"max by (list) (cte_list_bytes{sel}) / (max by (list) (cte_list_cap_bytes{sel}) > 0)", "{{list}}"
                )
            ],
            "Bytes each list holds, counted as the Netskope plugin counts them, against its cap. "
            "Over 90% for 5 minutes alerts (CteListNearCap).",
            kind="bargauge",
            unit="percentunit",
            max=1,
            thresholds=[(0.75, "orange"), (0.9, "red")],
        ),
        Panel(
            "Fill against the entry cap",
            [Target(f"max by (list) (cte_list_entries{sel}) / {ENTRY_CAP}", "{{list}}")],
            "Entries each list holds against the 300,000 a Netskope list may hold.",
            kind="bargauge",
            unit="percentunit",
            max=1,
            thresholds=[(0.75, "orange"), (0.9, "red")],
        ),
        Panel(
            "Entries per list",
            [Target(f"max by (list) (cte_list_entries{sel})", "{{list}}")],
            "Entries the list holds on the tenant after its last push.",
        ),
        Panel(
            "Bytes per list and cap",
            [
                Target(f"max by (list) (cte_list_bytes{sel})", "{{list}}"),
                Target(f"max by (list) (cte_list_cap_bytes{sel})", "{{list}} cap"),
            ],
            "Bytes the list holds and its cap.",
            unit="bytes",
        ),
        Panel(
            "Pushes per minute by outcome",
            [
                Target(
                    f"60 * sum by (list, outcome) (rate(cte_sink_pushes_total{sel}[{RATE}]))",
                    "{{list}} {{outcome}}",
                )
            ],
            "Pushes of a list to the tenant (append, replace, or a whole file hash list). A failed push "
            "leaves the list due with a growing backoff.",
        ),
        Panel(
            "Failed pushes (1 h)",
            [
                Target(
                    'sum by (list) (increase(cte_sink_pushes_total{outcome="failed", list=~"$list"}[1h])) or vector(0)',
                    "{{list}}",
                )
            ],
            "Failed pushes in the last hour, by list.",
            kind="stat",
            thresholds=[(1, "red")],
        ),
        Panel(
            "Push duration p95",
            [Target(_p95("cte_sink_push_duration_seconds", "list, ", sel), "{{list}}")],
            "Time to push one list, all its calls included (95th percentile).",
            unit="s",
        ),
        Panel(
            "Push steps p95",
            [Target(_p95("cte_sink_push_step_seconds", "step, "), "{{step}}")],
            "Where a push's time goes, step by step (95th percentile): reading the list back, the tenant's "
            "list names, the limits, the selection and diff in PostgreSQL, the body, the changing call, the "
            "deploy, the record.",
            unit="s",
        ),
        Panel(
            "Values left out by the cap (Unshared), 1 h",
            [Target(f"sum by (list) (increase(cte_sink_unshared_total{sel}[1h]))", "{{list}}")],
            "Values the cap left out of a list (the lowest priorities), tagged Unshared.",
        ),
        Panel(
            "Values refused by the tenant (Invalid host), 1 h",
            [Target(f"sum by (list) (increase(cte_sink_invalid_total{sel}[1h]))", "{{list}}")],
            "Values the tenant refused, dropped from the list and tagged Invalid host.",
        ),
        Panel(
            "Lists refused by the tenant, tenants rejecting credentials",
            [
                Target(f"max by (list) (cte_list_failed{sel}) or vector(0)", "{{list}} failed"),
                Target("max by (tenant) (cte_tenant_credentials_rejected) or vector(0)", "{{tenant}} credentials"),
            ],
            "1 while the tenant refuses a list other than entry by entry (state failed, retried with a backoff "
            "of at most 15 minutes) or answers 401/403 (nothing is sent until the tenant's credentials change). "
            "GET /api/cte/sharing/status shows the tenant's message.",
            kind="stat",
            thresholds=[(1, "red")],
        ),
        Panel(
            "Foreign entries and restored entries",
            [
                Target(f"max by (list) (cte_list_foreign_entries{sel})", "{{list}} foreign"),
                Target(
                    f"sum by (list) (increase(cte_sink_foreign_added_total{sel}[1h]))", "{{list}} foreign added (1 h)"
                ),
                Target(f"sum by (list) (increase(cte_sink_restored_total{sel}[1h]))", "{{list}} restored (1 h)"),
            ],
            "Entries on a list that the sink did not put there (kept, counted against the cap), new ones found by "
            "a read-back, and entries of ours found missing and pushed again.",
        ),
        Panel(
            "Values left out by the tenant's limits",
            [Target(f"max by (list) (cte_list_left_out_tenant_limit{sel})", "{{list}}")],
            "Values a list's cap would hold that the tenant's limits across its URL lists (300,000 entries, "
            "1,000 regex entries) leave out, planned by priority.",
        ),
        Panel(
            "Intents applied by the sink",
            [Target(f"sum by (action) (rate(cte_sink_intents_total[{RATE}]))", "{{action}}")],
            "Share intents applied to the desired list state, per second.",
            unit="cps",
        ),
        Panel(
            "Rule decisions by sharing and outcome",
            [
                Target(
                    f"sum by (sharing, outcome) (rate(cte_rule_decisions_total[{RATE}]))",
                    "sharing {{sharing}} {{outcome}}",
                )
            ],
            "Sharing decisions the rule-engine took, per second, by sharing id and outcome.",
            unit="cps",
        ),
        Panel(
            "Allow-list hits (1 h)",
            [Target("sum by (entry) (increase(cte_allow_list_hits_total[1h])) or vector(0)", "entry {{entry}}")],
            "Indicators kept out of every list by an allow-list entry, by entry id.",
        ),
        Panel(
            "Tenant requests by API and status",
            [
                Target(
                    f"sum by (tenant, api, status) (rate(cte_tenant_requests_total[{RATE}]))",
                    "{{tenant}} {{api}} {{status}}",
                )
            ],
            "Calls to each Netskope tenant, per second.",
            unit="reqps",
        ),
        Panel(
            "Tenant 429s",
            [
                Target(
                    f'sum by (tenant) (rate(cte_tenant_requests_total{{status="429"}}[{RATE}])) or vector(0)',
                    "{{tenant}}",
                )
            ],
            "Requests the tenant rate-limited, per second. Over 10% of requests alerts (CteTenantRateLimited).",
            unit="reqps",
        ),
        Panel(
            "Tenant retries",
            [
                Target(
                    f"sum by (tenant, api) (rate(cte_tenant_retries_total[{RATE}])) or vector(0)",
                    "{{tenant}} {{api}}",
                )
            ],
            "Requests retried after a 429, a 5xx or a transport error, per second.",
            unit="reqps",
        ),
        Panel(
            "Deploys by tenant and outcome (1 h)",
            [Target("sum by (tenant, outcome) (increase(cte_sink_deploys_total[1h]))", "{{tenant}} {{outcome}}")],
            "URL-list deploys (one per tenant per round of pushes) in the last hour.",
        ),
        Panel(
            "Alert polling: alerts in, sightings out /s",
            [
                Target(
                    f"sum by (tenant, type) (rate(cte_poll_alerts_total[{RATE}])) or vector(0)",
                    "{{tenant}} {{type}} alerts",
                ),
                Target(
                    f"sum by (configuration, indicator_type) (rate(cte_poll_indicators_total[{RATE}])) or vector(0)",
                    "{{configuration}} {{indicator_type}} sightings",
                ),
                Target(
                    f"sum by (configuration, kind) (rate(cte_poll_invalid_total[{RATE}])) or vector(0)",
                    "{{configuration}} invalid {{kind}}",
                ),
            ],
            "Alerts taken from each tenant's alert export (malware, malsite) and the indicator sightings "
            "published from them; values that are no valid indicator are skipped.",
            unit="cps",
        ),
        Panel(
            "Alert polling: pages and errors /s",
            [
                Target(
                    f"sum by (configuration, type, outcome) (rate(cte_poll_pages_total[{RATE}])) or vector(0)",
                    "{{configuration}} {{type}} {{outcome}}",
                ),
                Target(
                    f"sum by (configuration, type) (rate(cte_poll_errors_total[{RATE}])) or vector(0)",
                    "{{configuration}} {{type}} errors",
                ),
            ],
            "Iterator pages by outcome (taken, empty, repeated, recovered, lost) and failed polls "
            "(retried next round).",
            unit="cps",
        ),
        Panel(
            "Alert polling: freshness",
            [
                Target(
                    "time() - max by (configuration, type) (cte_poll_last_success_timestamp_seconds) or vector(0)",
                    "{{configuration}} {{type}} since the last successful poll",
                ),
                Target(
                    "max by (configuration, type) (cte_poll_iterator_lag_seconds) or vector(0)",
                    "{{configuration}} {{type}} iterator lag",
                ),
            ],
            "Time since each iterator was last polled successfully, and how far behind now the newest alert "
            "it delivered is.",
            unit="s",
        ),
        Panel(
            "Alert polling: backlog and recovery",
            [
                Target(
                    "max by (configuration, type) (cte_poll_backlog) or vector(0)",
                    "{{configuration}} {{type}} more waiting",
                ),
                Target(
                    "sum by (configuration, outcome) (increase(cte_poll_recovered_sightings_total[1h])) or vector(0)",
                    "{{configuration}} recovered {{outcome}} (1 h)",
                ),
            ],
            "1 when the tenant said more alerts were waiting at the end of a round; sightings of pages a "
            "crash interrupted, found on the topic or published again by the recovery.",
        ),
    ]
    return dashboard(
        "cte-netskope-lists",
        "Threat Exchange / Netskope lists and pushes",
        "How full is every Netskope list, what was left out or refused, do pushes reach the tenant, "
        "and does alert polling keep up?",
        panels,
        [_variable("list", "List", "label_values(cte_list_bytes, list)")],
    )


# ---------------------------------------------------------------------------- service health


def service_health() -> Any:
    job = '{job=~"$job"}'
    up_mappings = [
        {
            "type": "value",
            "options": {
                "0": {"text": "DOWN", "color": "red", "index": 0},
                "1": {"text": "UP", "color": "green", "index": 1},
            },
        }
    ]
    panels = [
        Panel(
            "Up",
            [Target(f"up{job}", "{{job}} {{instance}}")],
            "1 when Prometheus scraped the target, 0 when it could not. Down for a minute alerts (CteServiceDown).",
            kind="stat",
            width=12,
            height=5,
            mappings=up_mappings,
            thresholds=[],
        ),
        Panel(
            "Uptime",
            [Target(f"time() - process_start_time_seconds{job}", "{{job}} {{instance}}")],
            "Time since each process started: a short one after an unplanned restart means a crash.",
            kind="stat",
            unit="s",
            width=12,
            height=5,
        ),
        Panel(
            "CPU",
            [Target(f"rate(process_cpu_seconds_total{job}[{RATE}])", "{{job}} {{instance}}")],
            "CPU time per second (1 = one core).",
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Resident memory",
            [Target(f"process_resident_memory_bytes{job}", "{{job}} {{instance}}")],
            "Resident set size of each process.",
            unit="bytes",
            width=8,
        ),
        Panel(
            "Open file descriptors",
            [Target(f"process_open_fds{job}", "{{job}} {{instance}}")],
            "Sockets and files each process holds open.",
            width=8,
        ),
        Panel(
            "Python GC collections /s",
            [
                Target(
                    f"sum by (job, generation) (rate(python_gc_collections_total{job}[{RATE}]))",
                    "{{job}} gen {{generation}}",
                )
            ],
            "Garbage collections per second, by generation.",
            unit="cps",
            width=8,
        ),
        Panel(
            "Scrape duration",
            [Target(f"scrape_duration_seconds{job}", "{{job}} {{instance}}")],
            "Time Prometheus takes to read each /metrics.",
            unit="s",
            width=8,
        ),
        Panel(
            "Seconds since the ager's last sweep",
            [Target(f"time() - max(cte_ager_last_sweep_timestamp_seconds{job})", "since the last sweep")],
            "The ager sweeps every second; over two minutes alerts (CteAgerNotSweeping).",
            kind="stat",
            unit="s",
            width=8,
            thresholds=[(60, "orange"), (120, "red")],
        ),
        Panel(
            "API requests by route and status",
            [
                Target(
                    f"sum by (route, method, status) (rate(cte_http_requests_total{job}[{RATE}]))",
                    "{{method}} {{route}} {{status}}",
                )
            ],
            "HTTP requests the API answered, per second.",
            unit="reqps",
        ),
        Panel(
            "API latency p95 by route",
            [Target(_p95("cte_http_request_duration_seconds", "route, method, ", job), "{{method}} {{route}}")],
            "Time to answer (95th percentile). ?wait=true writes include the wait for the read model.",
            unit="s",
        ),
        Panel(
            "API 5xx ratio",
            [
                Target(
                    f'(sum(rate(cte_http_requests_total{{job=~"$job", status=~"5.."}}[{RATE}])) or vector(0))'
                    f" / sum(rate(cte_http_requests_total{job}[{RATE}]))",
                    "5xx",
                )
            ],
            "Share of API requests answered with a server error. Over 5% alerts (CteApiErrors).",
            unit="percentunit",
            thresholds=[(0.05, "red")],
        ),
        Panel(
            "Sign-in failures /s",
            [Target(f"sum(rate(cte_auth_failures_total{job}[{RATE}]))", "failures")],
            "Failed sign-ins on /api/auth: a misconfigured client or someone guessing.",
            unit="cps",
        ),
        Panel(
            "Messages in process",
            [
                Target(
                    f"sum by (app_name, handler) (faststream_received_messages_in_process{job})",
                    "{{app_name}} {{handler}}",
                )
            ],
            "Batches a consumer is working on now (FastStream). Stuck above 0: a handler that does not return.",
        ),
        Panel(
            "Handler duration p95",
            [
                Target(
                    _p95("faststream_received_processed_messages_duration_seconds", "app_name, handler, ", job),
                    "{{app_name}} {{handler}}",
                )
            ],
            "Time a consumer's handler takes per batch (FastStream, 95th percentile).",
            unit="s",
        ),
        Panel(
            "Handled batches by status",
            [
                Target(
                    f"sum by (app_name, handler, status) "
                    f"(rate(faststream_received_processed_messages_total{job}[{RATE}]))",
                    "{{app_name}} {{handler}} {{status}}",
                )
            ],
            "Batches handled per second: acked, nacked (redelivered), rejected, skipped, error.",
            unit="cps",
        ),
        Panel(
            "Consumer batch errors /s",
            [
                Target(
                    f"sum by (job, consumer) (rate(cte_consumer_batch_errors_total{job}[{RATE}])) or vector(0)",
                    "{{consumer}}",
                ),
                Target(
                    "sum by (app_name, exception_type) "
                    f"(rate(faststream_received_processed_messages_exceptions_total{job}[{RATE}])) or vector(0)",
                    "{{app_name}} {{exception_type}}",
                ),
            ],
            "Batches that failed and will be redelivered. Failing for 10 minutes alerts (CteConsumerBatchesFailing).",
            unit="cps",
        ),
        Panel(
            "Publish latency p95",
            [
                Target(
                    _p95("cte_kafka_publish_duration_seconds", "job, topic, ", job),
                    "{{job}} {{topic}}",
                )
            ],
            "Time from a publish's first send until Kafka acknowledged its last record (95th percentile); "
            "the API answers a write after it.",
            unit="s",
        ),
        Panel(
            "Publish errors /s",
            [
                Target(
                    "sum by (job, topic, exception_type) "
                    f"(rate(cte_kafka_publish_failures_total{job}[{RATE}])) or vector(0)",
                    "{{job}} {{topic}} {{exception_type}}",
                ),
                Target(
                    f'sum by (job, topic) (rate(cte_kafka_published_records_total{{job=~"$job", status="error"}}'
                    f"[{RATE}])) or vector(0)",
                    "{{job}} {{topic}} records",
                ),
            ],
            "Publishes that failed, by exception type, and the records they held. None is reported as a "
            "success: the API answers 5xx, a consumer's batch is redelivered.",
            unit="cps",
        ),
    ]
    return dashboard(
        "cte-service-health",
        "Threat Exchange / Service health",
        "Each service's process, HTTP and Kafka client health.",
        panels,
        [_variable("job", "Service", f'label_values(up{{job=~"{JOBS}"}}, job)')],
    )


DASHBOARDS = {
    "pipeline-overview.json": pipeline_overview,
    "netskope-lists.json": netskope_lists,
    "service-health.json": service_health,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file is not what this script writes")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print("out of date (run deploy/grafana/generate_dashboards.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
