"""Every dashboard query against a real Prometheus scraping the running services.

A Prometheus from Debian's ``prometheus`` package runs on a free port with the local scrape
configuration (deploy/prometheus/prometheus-local.yml) pointed at the test processes' ports, a 1 s
scrape interval and the project's alert rules. Traffic goes through the API to a fake-tenant URL
list and file hash list (with an expiry, a rejected batch, an allow-list hit and a burst of 429s
from the tenant), then every target of every dashboard panel must parse and return data, every
dashboard variable must find values, and every alert rule must evaluate without error.
"""

from __future__ import annotations

import copy
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.conftest import Pipeline, Running
from tests.integration.test_api_first_path import token
from tests.support.processes import free_port
from tests.support.waiting import eventually
from tests.unit.test_observability_files import (
    APT_HINT,
    JOBS,
    PROMETHEUS_CONFIGS,
    RULES_GLOB,
    dashboard_targets,
    substitute,
    variable_queries,
)

pytestmark = pytest.mark.timeout(600)

SCRAPE_INTERVAL_S = 1
HASH_MD5 = "900150983cd24fb0d6963f7d28e17f72"  # md5("abc")


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


# ---------------------------------------------------------------------------- Prometheus


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def query(self, expr: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = r.json()
        return body

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _config(targets: dict[str, str]) -> dict[str, Any]:
    """The local scrape configuration with the test processes' addresses, scraping every second."""
    local = yaml.safe_load(PROMETHEUS_CONFIGS[0].read_text(encoding="utf-8"))
    config: dict[str, Any] = copy.deepcopy(local)
    config["global"]["scrape_interval"] = f"{SCRAPE_INTERVAL_S}s"
    config["global"]["evaluation_interval"] = f"{SCRAPE_INTERVAL_S}s"
    config["rule_files"] = [str(RULES_GLOB)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets) == JOBS
    for name, job in jobs.items():
        # One process per job here (the rule-engine's second member is not started).
        first = job["static_configs"][0]
        job["static_configs"] = [{**first, "targets": [targets[name]]}]
    return config


@pytest.fixture(scope="module")
def prometheus(services: Running, pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(f"prometheus not found on PATH: {APT_HINT}")
    work = tmp_path_factory.mktemp("prometheus")
    config_path = work / "prometheus.yml"
    targets = {
        "ingest-api": _host_port(services.api.ready_url),
        "rule-engine": _host_port(services.rule_engine.ready_url),
        "netskope-sink": _host_port(pipeline.sink.ready_url),
        "ager": _host_port(pipeline.ager.ready_url),
    }
    config_path.write_text(yaml.safe_dump(_config(targets)), encoding="utf-8")
    port = free_port()
    log_path = work / "prometheus.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    try:

        def ready() -> None:
            assert proc.poll() is None, f"prometheus exited with {proc.returncode}:\n{prom.log_tail()}"
            assert httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200

        eventually(ready, timeout=60)

        def every_target_up() -> None:
            result = prom.query("up")["data"]["result"]
            up = {r["metric"]["job"]: r["value"][1] for r in result}
            assert up == dict.fromkeys(JOBS, "1"), up

        eventually(every_target_up, timeout=60)
        yield prom
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


# ---------------------------------------------------------------------------- traffic


def _metrics(url: str) -> str:
    return httpx.get(url, timeout=5).text


@pytest.fixture(scope="module")
def traffic(pipeline: Pipeline, prometheus: Prometheus) -> dict[str, str]:
    """Indicators through the API to a URL list and a file hash list of the fake tenant."""
    sfx = secrets.token_hex(3)
    names = {
        "tenant": f"obs-tenant-{sfx}",
        "source": f"obs-src-{sfx}",
        "destination": f"obs-ns-{sfx}",
        "rule": f"Observability {sfx}",
        "urls": f"obs-urls-{sfx}",
        "hashes": f"obs-hashes-{sfx}",
    }
    api = httpx.Client(
        base_url=pipeline.api_url, headers={"Authorization": f"Bearer {token(pipeline.api_url)}"}, timeout=30
    )
    tenant = httpx.Client(base_url=pipeline.tenant_url, timeout=30)
    tenant.post("/_sim/filehashlists", json={"name": names["hashes"]}).raise_for_status()
    r = api.post(
        "/api/tenants",
        json={
            "name": names["tenant"],
            "tenantName": pipeline.tenant_url,
            "v1Token": "fake-v1-token",
            "v2Token": "fake-v2-token",
        },
    )
    assert r.status_code == 201, r.text
    for cfg in (
        {"name": names["source"], "plugin": "api_source", "ageAfterDays": 30},
        {
            "name": names["destination"],
            "plugin": "netskope",
            "tenant": names["tenant"],
            "parameters": {"enablePolling": False},
        },
    ):
        r = api.post("/api/cte/configurations", json=cfg)
        assert r.status_code == 201, r.text
    r = api.post(
        "/api/cte/business_rules",
        json={"name": names["rule"], "filters": {"query": 'sources.severity IN ("unknown","low","medium","high")'}},
    )
    assert r.status_code == 201, r.text
    for action, parameters in (
        ("url", {"list": "create", "name": names["urls"]}),
        ("file", {"file_list": names["hashes"]}),
    ):
        r = api.post(
            "/api/cte/sharing",
            json={
                "sourceConfiguration": names["source"],
                "businessRule": names["rule"],
                "destinationConfiguration": names["destination"],
                "action": action,
                "parameters": parameters,
            },
        )
        assert r.status_code == 201, r.text

    def post(items: list[dict[str, Any]], expect: int = 201) -> None:
        r = api.post(
            "/api/cte/indicators/", params={"wait": "true"}, json=[{"source": names["source"], **i} for i in items]
        )
        assert r.status_code == expect, r.text

    post(
        [
            {"value": f"https://obs-{sfx}.example/login", "type": "url", "severity": "high"},
            # "sharedWith" is a field of the reference's answer, ignored on input and counted.
            {"value": f"obs-{sfx}.example", "type": "domain", "severity": "low", "sharedWith": []},
            {"value": f"198.51.100.{int(sfx, 16) % 250 + 1}", "type": "ipv4", "severity": "medium"},
            {"value": HASH_MD5, "type": "md5", "severity": "medium"},
        ]
    )
    # A rejected batch (all or nothing): a bad type.
    post([{"value": f"bad-{sfx}.example", "type": "not-a-type"}], expect=422)
    # A failed sign-in.
    assert httpx.post(f"{pipeline.api_url}/api/auth", data={"grant_type": "client_credentials"}).status_code >= 400
    # An indicator that falls due in two seconds: the ager expires it.
    due = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    post([{"value": f"expiring-{sfx}.example", "type": "domain", "severity": "low", "expiresAt": due}])
    # An allow-list entry (a re-evaluation), then an indicator it keeps out of the lists.
    r = api.post("/api/cte/allow_list", json={"kind": "exact", "pattern": f"allowed-{sfx}.example"})
    assert r.status_code == 201, r.text
    post([{"value": f"allowed-{sfx}.example", "type": "domain", "severity": "low"}])

    def deployed() -> set[str]:
        state = tenant.get("/_sim/state").json()
        return set(state["urllists"].get(names["urls"], {}).get("deployed", []))

    def in_the_list() -> None:
        assert f"obs-{sfx}.example" in deployed()
        assert HASH_MD5 in set(tenant.get("/_sim/state").json()["filehashlists"].get(names["hashes"], []))

    eventually(in_the_list, timeout=60)

    # The tenant answers 429 for a while: the sink retries, and may fail a push.
    tenant.put("/_sim/faults", json={"rate_429": 1.0, "retry_after": 0, "paths": ["/api/v2/"]}).raise_for_status()
    try:
        post([{"value": f"late-{sfx}.example", "type": "domain", "severity": "low"}])

        def rate_limited() -> None:
            lines = _metrics(pipeline.sink.ready_url).splitlines()
            assert any(
                line.startswith("cte_tenant_requests_total{")
                and f'tenant="{names["tenant"]}"' in line
                and 'status="429"' in line
                for line in lines
            ), "no 429 counted for this test's tenant yet"

        eventually(rate_limited, timeout=30)
    finally:
        tenant.put("/_sim/faults", json={}).raise_for_status()
    eventually(lambda: _contains(deployed(), f"late-{sfx}.example"))
    eventually(lambda: _contains(_metrics(pipeline.api_url + "/metrics/"), "cte_ingest_indicators_rejected_total{"))
    eventually(lambda: _positive_counter(_metrics(pipeline.ager.ready_url), "cte_ager_expire_commands_total"))
    return names


def _contains(haystack: str | set[str], needle: str) -> None:
    assert needle in haystack, f"{needle} not yet there"


def _positive_counter(text: str, name: str) -> None:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} not exposed"
    assert values[0] > 0, f"{name} is still 0"


# ---------------------------------------------------------------------------- the checks


def _scraped_after_traffic(prometheus: Prometheus) -> None:
    """Wait until Prometheus holds what the traffic produced, plus a few scrape intervals for rates."""

    def present() -> None:
        for expr in (
            'cte_tenant_requests_total{status="429"}',
            "cte_ager_expire_commands_total > 0",
            "cte_list_bytes",
            "cte_allow_list_hits_total",
        ):
            assert prometheus.query(expr)["data"]["result"], f"{expr}: nothing scraped yet"

    eventually(present, timeout=30)
    time.sleep(5 * SCRAPE_INTERVAL_S)


def test_every_dashboard_query_parses_and_returns_data(traffic: dict[str, str], prometheus: Prometheus) -> None:
    _scraped_after_traffic(prometheus)
    targets = list(dashboard_targets())
    assert len(targets) > 30
    problems = []
    for board, panel, target in targets:
        expr = substitute(target["expr"])
        body = prometheus.query(expr)
        if body.get("status") != "success":
            problems.append(f"{board}: {panel!r}: {expr}\n    {body.get('errorType')}: {body.get('error')}")
        elif not body["data"]["result"]:
            problems.append(f"{board}: {panel!r}: {expr}\n    no data")
    assert not problems, f"{len(problems)} of {len(targets)} queries failed:\n" + "\n".join(problems)


def test_every_dashboard_variable_has_values(traffic: dict[str, str], prometheus: Prometheus) -> None:
    _scraped_after_traffic(prometheus)
    for board, name, selector, label in variable_queries():
        body = prometheus.query(selector)
        assert body["status"] == "success", f"{board}: variable {name}: {body}"
        values = {r["metric"].get(label) for r in body["data"]["result"]} - {None}
        assert values, f"{board}: variable {name}: {selector} has no {label} values"
    lists = {r["metric"]["list"] for r in prometheus.query("cte_list_bytes")["data"]["result"]}
    assert any(traffic["urls"] in key for key in lists), lists


def test_every_producing_service_counts_its_publishes(traffic: dict[str, str], prometheus: Prometheus) -> None:
    """The API's indicator events, the rule-engine's share intents and the ager's expire commands all go
    through libs/common's producer, which counts them."""
    _scraped_after_traffic(prometheus)
    result = prometheus.query('sum by (job) (cte_kafka_published_records_total{status="success"})')["data"]["result"]
    counted = {r["metric"]["job"] for r in result if float(r["value"][1]) > 0}
    assert {"ingest-api", "rule-engine", "ager"} <= counted, result
    latency = prometheus.query("sum by (job) (cte_kafka_publish_duration_seconds_count)")["data"]["result"]
    assert {"ingest-api", "rule-engine", "ager"} <= {r["metric"]["job"] for r in latency}, latency


def test_alert_rules_load_and_evaluate(traffic: dict[str, str], prometheus: Prometheus) -> None:
    def evaluated() -> list[dict[str, Any]]:
        body = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()
        rules = [rule for group in body["data"]["groups"] for rule in group["rules"]]
        assert rules, "no rules loaded"
        assert all(r.get("lastEvaluation", "").startswith("20") for r in rules), "not evaluated yet"
        return rules

    rules = eventually(evaluated, timeout=30)
    broken = [f"{r['name']}: {r.get('health')} {r.get('lastError', '')}" for r in rules if r.get("health") != "ok"]
    assert not broken, "\n".join(broken)
    firing = {r["name"] for r in rules if r.get("state") == "firing"}
    # Nothing is down and nothing is far behind during this test.
    assert not firing & {"CteServiceDown", "CteConsumerLagHigh", "CteAgerNotSweeping"}, firing
