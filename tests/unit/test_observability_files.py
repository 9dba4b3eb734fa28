"""Static checks of the observability files: Prometheus configurations and alert rules (with promtool,
from Debian's ``prometheus`` package), the Grafana dashboards, and the AsyncAPI description in docs/.

The dashboards' queries are run against a real Prometheus by tests/integration/test_observability.py;
here they are checked for shape and for metric names the code defines.

This module also writes the AsyncAPI description (FastStream's generator over the services' own
subscriber and publisher declarations):

    uv run python -m tests.unit.test_observability_files --write-asyncapi
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIGS = (PROMETHEUS_DIR / "prometheus-local.yml", PROMETHEUS_DIR / "prometheus-compose.yml")
RULES_GLOB = PROMETHEUS_DIR / "rules" / "*.yml"
ALERTS_FILE = PROMETHEUS_DIR / "rules" / "alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DASHBOARD_GENERATOR = GRAFANA_DIR / "generate_dashboards.py"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
OPERATIONS_DOC = ROOT / "docs" / "OPERATIONS.md"
ASYNCAPI_JSON = ROOT / "docs" / "asyncapi.json"
ASYNCAPI_YAML = ROOT / "docs" / "asyncapi.yaml"

# The modules that define the project's metrics.
METRICS_MODULES = (
    ROOT / "libs" / "common" / "src" / "cte_common" / "metrics.py",
    *sorted(ROOT.glob("services/*/src/*/metrics.py")),
)
# Series Prometheus adds to every scrape target.
PROMETHEUS_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
JOBS = {"ingest-api", "rule-engine", "netskope-sink", "ager"}
DATASOURCE_UID = "prometheus"
# Grafana's built-in and dashboard variables, and what the tests put in their place: the variables'
# "All" value is the regex .*; $__rate_interval is at least four scrape intervals in Grafana.
GRAFANA_SUBSTITUTIONS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h", "$job": ".*", "$list": ".*"}
APT_HINT = "install Debian's package first: apt-get install -y --no-install-recommends prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool not found on PATH: {APT_HINT}")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, check=False, timeout=120)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


# ---------------------------------------------------------------------------- metric names


def _sample_names(kind: str, name: str) -> set[str]:
    """The sample names prometheus_client exposes for a metric family (``_created`` is disabled)."""
    if kind == "counter":
        return {name if name.endswith("_total") else f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    if kind == "summary":
        return {name, f"{name}_count", f"{name}_sum"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


_METRIC_DEFINITION = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")


def project_metric_names() -> set[str]:
    """Every sample name the project's metrics modules define, read with a regex over their source."""
    names: set[str] = set()
    for path in METRICS_MODULES:
        for kind, name in _METRIC_DEFINITION.findall(path.read_text(encoding="utf-8")):
            names |= _sample_names(kind.lower(), name)
    return names


def _registry_names(registry: Any) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names |= _sample_names(family.type, family.name)
        names |= {s.name for s in family.samples}
    return names


@cache
def standard_metric_names() -> frozenset[str]:
    """prometheus_client's default collectors and the receiving side of FastStream's Prometheus middleware.

    FastStream's publish metrics (``faststream_published_*``) are left out: records are sent through
    libs/common's own producer, not FastStream's publish, so those series stay empty; the publish
    metrics are libs/common's ``cte_kafka_publish*``.
    """
    from faststream.prometheus.container import MetricsContainer
    from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    faststream = CollectorRegistry()
    MetricsContainer(faststream, custom_label_names=[])
    received = {n for n in _registry_names(faststream) if not n.startswith("faststream_published_")}
    return frozenset(_registry_names(registry) | received | PROMETHEUS_SERIES)


def known_metric_names() -> set[str]:
    return project_metric_names() | set(standard_metric_names())


_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (enough PromQL for our queries: no @ or subqueries)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    names = set()
    for m in re.finditer(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        if m.group(0).lower() in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


# ---------------------------------------------------------------------------- dashboards


def dashboards() -> dict[str, Any]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def dashboard_targets() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(dashboard title, panel title, target) for every target of every panel."""
    for board in dashboards().values():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                yield board["title"], panel["title"], target


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


def variable_queries() -> Iterator[tuple[str, str, str, str]]:
    """(dashboard title, variable name, series selector, label) of every label_values() variable."""
    for board in dashboards().values():
        for var in board.get("templating", {}).get("list", []):
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = _LABEL_VALUES.match(query)
            assert m, f"{board['title']}: variable {var['name']}: not label_values(selector, label)"
            assert m["selector"], f"{board['title']}: variable {var['name']}: label_values without a selector"
            yield board["title"], var["name"], m["selector"], m["label"]


def substitute(expr: str) -> str:
    """The query Grafana would send, with the variables at their "All" value."""
    for name in sorted(GRAFANA_SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_SUBSTITUTIONS[name])
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_dashboards", DASHBOARD_GENERATOR)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    with mock.patch.dict(sys.modules, {spec.name: module}):
        spec.loader.exec_module(module)
    return module


def test_dashboards_are_what_the_generator_writes() -> None:
    rendered = _load_generator().render()
    on_disk = {p.name for p in DASHBOARDS_DIR.glob("*.json")}
    assert on_disk == set(rendered), "dashboards/ holds files the generator does not write (or misses some)"
    for name, text in rendered.items():
        assert (DASHBOARDS_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name} is out of date: run uv run python deploy/grafana/generate_dashboards.py"
        )


def test_three_dashboards_with_unique_uids() -> None:
    boards = dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert len(boards) == 3
    assert len(set(uids)) == len(uids)
    assert {b["title"] for b in boards.values()} == {
        "Threat Exchange / Pipeline overview",
        "Threat Exchange / Netskope lists and pushes",
        "Threat Exchange / Service health",
    }


def test_every_panel_queries_the_provisioned_datasource() -> None:
    problems = []
    for name, board in dashboards().items():
        ids = [p["id"] for p in board["panels"]]
        if len(set(ids)) != len(ids):
            problems.append(f"{name}: duplicate panel ids")
        for panel in board["panels"]:
            where = f"{name}: {panel.get('title')!r}"
            if panel.get("datasource", {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{where}: datasource is not uid {DATASOURCE_UID}")
            targets = panel.get("targets") or []
            if not any(t.get("expr", "").strip() for t in targets):
                problems.append(f"{where}: no target with an expr")
            for t in targets:
                if not t.get("expr", "").strip():
                    problems.append(f"{where}: target {t.get('refId')} has no expr")
                if t.get("datasource", {}).get("uid") != DATASOURCE_UID:
                    problems.append(f"{where}: target {t.get('refId')} datasource is not uid {DATASOURCE_UID}")
            grid = panel["gridPos"]
            if grid["x"] + grid["w"] > 24:
                problems.append(f"{where}: wider than the grid")
        for var in board.get("templating", {}).get("list", []):
            if var.get("datasource", {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{name}: variable {var['name']}: datasource is not uid {DATASOURCE_UID}")
    assert not problems, "\n".join(problems)


def test_dashboard_queries_use_only_defined_metrics() -> None:
    known = known_metric_names()
    problems = []
    for board, panel, target in dashboard_targets():
        expr = substitute(target["expr"])
        names = metric_names(expr)
        if not names:
            problems.append(f"{board}: {panel!r}: no metric in {expr}")
        problems += [f"{board}: {panel!r}: {n} is not a metric the code defines" for n in sorted(names - known)]
    for board, var, selector, _ in variable_queries():
        problems += [f"{board}: variable {var}: {n} is not defined" for n in sorted(metric_names(selector) - known)]
    assert not problems, "\n".join(problems)


def test_every_project_metric_is_on_a_dashboard() -> None:
    shown = {n for _, _, t in dashboard_targets() for n in metric_names(substitute(t["expr"]))}
    missing = []
    for path in METRICS_MODULES:
        for kind, name in _METRIC_DEFINITION.findall(path.read_text(encoding="utf-8")):
            if not _sample_names(kind.lower(), name) & shown:
                missing.append(f"{name} ({path.relative_to(ROOT)})")
    assert not missing, (
        "metrics no dashboard shows; add a panel in deploy/grafana/generate_dashboards.py and run it:\n"
        + "\n".join(missing)
    )


def test_metric_names_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (list, le) (rate(cte_sink_push_duration_seconds_bucket{list=~".*"}[1m])))'
        " / on (job) group_left (x) max(up) or vector(1e3) and time() - cte_ager_last_sweep_timestamp_seconds"
    )
    assert metric_names(expr) == {
        "cte_sink_push_duration_seconds_bucket",
        "up",
        "cte_ager_last_sweep_timestamp_seconds",
    }
    assert "cte_consumer_lag_records" in project_metric_names()
    assert "cte_consumer_batch_records_bucket" in project_metric_names()
    assert "faststream_received_messages_total" in standard_metric_names()
    assert "faststream_published_messages_total" not in known_metric_names()
    assert "cte_kafka_published_records_total" in project_metric_names()
    assert "process_resident_memory_bytes" in standard_metric_names()


def test_grafana_datasource_is_the_dashboards_uid() -> None:
    (datasource,) = load_yaml(DATASOURCES_FILE)["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == "prometheus"
    compose = load_yaml(PROMETHEUS_CONFIGS[1])
    assert datasource["jsonData"]["timeInterval"] == compose["global"]["scrape_interval"]


# ---------------------------------------------------------------------------- Prometheus


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_scrape_config_passes_promtool(config: Path) -> None:
    # Rule files are relative to the configuration; check a copy of the folder so nothing else leaks in.
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "prometheus"
        shutil.copytree(PROMETHEUS_DIR, copy)
        result = run_promtool("check", "config", str(copy / config.name))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rule files found", result.stdout + result.stderr), result.stdout


def test_local_and_compose_configs_scrape_the_same_jobs() -> None:
    from ager.settings import Settings as AgerSettings
    from ingest_api.settings import Settings as ApiSettings
    from netskope_sink.settings import Settings as SinkSettings
    from rule_engine.settings import Settings as RuleEngineSettings

    ports = {
        "ingest-api": ApiSettings.model_fields["api_port"].default,
        "rule-engine": RuleEngineSettings.model_fields["rule_engine_metrics_port"].default,
        "netskope-sink": SinkSettings.model_fields["sink_metrics_port"].default,
        "ager": AgerSettings.model_fields["ager_metrics_port"].default,
    }
    # The second member's default in deploy/stack.sh: the first member's port + 3.
    ports["rule-engine-2"] = ports["rule-engine"] + 3
    local, compose = (load_yaml(p) for p in PROMETHEUS_CONFIGS)

    def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {j["job_name"]: j for j in config["scrape_configs"]}

    assert set(jobs(local)) == set(jobs(compose)) == JOBS
    assert local["rule_files"] == compose["rule_files"] == ["rules/*.yml"]
    for name, job in jobs(local).items():
        other = jobs(compose)[name]
        assert job.get("metrics_path", "/metrics") == other.get("metrics_path", "/metrics")
        # The same members, by their service label (the rule-engine has two), each on its default port.
        assert [s["labels"] for s in job["static_configs"]] == [s["labels"] for s in other["static_configs"]], name
        assert job["static_configs"][0]["labels"] == {"service": name}
        for static in job["static_configs"]:
            assert static["targets"] == [f"127.0.0.1:{ports[static['labels']['service']]}"], name
    assert [s["labels"]["service"] for s in jobs(local)["rule-engine"]["static_configs"]] == [
        "rule-engine",
        "rule-engine-2",
    ]
    assert jobs(local)["ingest-api"]["metrics_path"] == "/metrics/"


def test_rules_pass_promtool() -> None:
    files = sorted(glob.glob(str(RULES_GLOB)))
    assert files, f"nothing matches {RULES_GLOB}"
    result = run_promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in load_yaml(ALERTS_FILE)["groups"] for r in g["rules"] if "alert" in r}


def test_every_alert_is_tested_both_ways_and_documented() -> None:
    alerts = _alerts()
    assert {
        "CteServiceDown",
        "CteConsumerLagGrowing",
        "CteListNearCap",
        "CteListPushFailing",
        "CteExpiryLagHigh",
        "CteDeadLetters",
        "CteTenantRateLimited",
    } <= set(alerts)
    fires: set[str] = set()
    stays_quiet: set[str] = set()
    for test in load_yaml(RULE_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else stays_quiet).add(case["alertname"])
    operations = OPERATIONS_DOC.read_text(encoding="utf-8")
    problems = []
    for name, rule in alerts.items():
        if name not in fires:
            problems.append(f"{name}: no test case where it fires")
        if name not in stays_quiet:
            problems.append(f"{name}: no test case where it stays quiet")
        if rule["labels"].get("severity") not in {"critical", "warning"}:
            problems.append(f"{name}: severity is not critical or warning")
        if rule["annotations"].get("runbook_url") != f"docs/OPERATIONS.md#{name.lower()}":
            problems.append(f"{name}: runbook_url is not its section of docs/OPERATIONS.md")
        if not re.search(rf"^#+ {name}\s*$", operations, re.MULTILINE):
            problems.append(f"{name}: no section '### {name}' in docs/OPERATIONS.md")
    assert not problems, "\n".join(problems)


def test_alert_rules_use_only_defined_metrics() -> None:
    known = known_metric_names()
    problems = [
        f"{name}: {metric} is not a metric the code defines"
        for name, rule in _alerts().items()
        for metric in sorted(metric_names(rule["expr"]) - known)
    ]
    assert not problems, "\n".join(problems)


def test_every_dashboard_is_documented() -> None:
    operations = OPERATIONS_DOC.read_text(encoding="utf-8")
    for board in dashboards().values():
        assert board["title"] in operations, f"{board['title']} is not described in docs/OPERATIONS.md"


# ---------------------------------------------------------------------------- AsyncAPI

# The schema of each topic's records (by role, the middle of <prefix>.<role>.v1).
_DEAD_LETTER_SCHEMA = {
    "title": "DeadLetter",
    "description": "The original record's bytes, unchanged, under its original key. Headers: dlq-consumer, "
    "dlq-reason, dlq-topic, dlq-partition, dlq-offset (which consumer set it aside, why, and where it came from).",
    "type": "string",
    "format": "binary",
}


def _payload_schemas() -> tuple[dict[str, str], dict[str, Any]]:
    """(schema name by topic role, components.schemas) from the event models of cte_common.events."""
    from pydantic import TypeAdapter

    from cte_common.envelope import IndicatorEnvelope, ShareIntentEnvelope
    from cte_common.events import ConfigChange, IndicatorEvent, ShareIntent

    by_role = {
        "indicator-events": "IndicatorRecord",
        "config-changes": "ConfigChange",
        "share-intents": "ShareRecord",
        "dead-letter": "DeadLetter",
    }
    schemas: dict[str, Any] = {"DeadLetter": _DEAD_LETTER_SCHEMA}
    models: dict[str, Any] = {
        # A record of the indicator topic: one event, or an envelope of many (cte_common.envelope).
        "IndicatorRecord": IndicatorEnvelope | IndicatorEvent,
        "IndicatorEvent": IndicatorEvent,
        "ConfigChange": ConfigChange,
        # A record of the share-intent topic: one intent, or an envelope of one list's.
        "ShareRecord": ShareIntentEnvelope | ShareIntent,
        "ShareIntent": ShareIntent,
    }
    for name, tp in models.items():
        schema = TypeAdapter(tp).json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schema.setdefault("title", name)
        schemas[name] = schema
    return by_role, dict(sorted(schemas.items()))


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of the topics, generated by FastStream from the services' code.

    Each consumer service's ``run()`` builds its broker and hands a ``setup`` function to
    ``run_consumer_service``; here that call is intercepted, and every service's ``setup`` declares its
    subscribers and publishers on one documentation broker (nothing connects to Kafka). The ingest-api
    builds its producer inside its FastAPI lifespan and declares nothing, so its two publishers and the
    shared dead-letter publisher are declared here. The subscribers take raw record batches, so
    FastStream cannot see their payload: each message's payload is set to the event model of its
    topic (cte_common.events).
    """
    from faststream.specification import AsyncAPI

    import ager.main
    import netskope_sink.main
    import rule_engine.main
    from cte_common.kafka import make_broker
    from cte_common.settings import CommonSettings
    from cte_common.topics import Topics

    topics = Topics("cte")
    broker = make_broker(CommonSettings.model_construct(), client_id="cte-docs")

    def intercept(settings: Any, *, service: str, metrics_port: int, setup: Any, **options: Any) -> None:
        asyncio.run(setup(broker, None, topics))

    environment = {k: v for k, v in os.environ.items() if not k.startswith("CTE_")}
    with (
        tempfile.TemporaryDirectory() as empty,
        contextlib.chdir(empty),  # no .env: the services' settings at their defaults
        mock.patch.dict(os.environ, environment, clear=True),
    ):
        for module in (rule_engine.main, netskope_sink.main, ager.main):
            with mock.patch.object(module, "run_consumer_service", intercept):
                module.run()
    broker.publisher(
        topics.indicator_events,
        title="ingest-api: indicator events",
        description="Sightings, retractions, tag edits and deletions posted through the API, in envelopes "
        '({"envelope": 2, "events": [...]}): the events of a request that hash to one partition share a '
        "record, in order, keyed by its first event's canonical value; published with acks=all before the "
        "API answers.",
    )
    broker.publisher(
        topics.config_changes,
        title="ingest-api: configuration changes",
        description="Changes of configurations, rules, sharings, the allow-list and settings, keyed "
        "<resource>:<key>; a null body is a deletion (a tombstone on the compacted topic).",
    )
    broker.publisher(
        topics.dead_letter,
        title="dead letters",
        description="Records a consumer (rule-engine, netskope-sink) could not decode, keyed by the "
        "original key; they count as applied.",
    )
    spec: dict[str, Any] = (
        AsyncAPI(
            broker,
            title="Threat Exchange events",
            version="0.1.0",
            description="The Kafka topics of the Threat Exchange services. Topic names are "
            "<CTE_TOPIC_PREFIX>.<role>.v1; shown with the default prefix cte. Every record is JSON "
            "(cte_common.events), except on the dead-letter topic; a record of the indicator or the share-intent "
            "topic is one event or an envelope of many (cte_common.envelope). Generated by "
            "`uv run python -m tests.unit.test_observability_files --write-asyncapi`.",
        )
        .to_specification()
        .to_jsonable()
    )
    by_role, schemas = _payload_schemas()
    for channel in spec["channels"].values():
        role = channel["address"].split(".")[-2]
        for ref in channel["messages"].values():
            message = spec["components"]["messages"][_unref(ref["$ref"], "#/components/messages/")]
            message["payload"] = {"$ref": f"#/components/schemas/{by_role[role]}"}
    spec["components"]["schemas"] = schemas
    # FastStream keeps subscribers and publishers in sets: sort, so the output is stable.
    for parent, key in ((spec, "channels"), (spec, "operations"), (spec["components"], "messages")):
        parent[key] = dict(sorted(parent[key].items()))
    return spec


def _unref(ref: str, prefix: str) -> str:
    from urllib.parse import unquote

    assert ref.startswith(prefix), ref
    return unquote(ref.removeprefix(prefix))


def asyncapi_texts() -> tuple[str, str]:
    spec = asyncapi_document()
    return (
        json.dumps(spec, indent=2, ensure_ascii=False) + "\n",
        yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=120),
    )


def test_asyncapi_documents_every_topic_and_is_current() -> None:
    from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema

    from cte_common.topics import ALL_TOPICS, Topics

    json_text, yaml_text = asyncapi_texts()
    spec = json.loads(json_text)
    # What `faststream docs serve docs/asyncapi.json` parses it with.
    ApplicationSchema.model_validate_json(json_text)
    addresses = {c["address"] for c in spec["channels"].values()}
    assert addresses == {Topics("cte").name(t) for t in ALL_TOPICS}
    receive = {
        spec["channels"][_unref(o["channel"]["$ref"], "#/channels/")]["address"]
        for o in spec["operations"].values()
        if o["action"] == "receive"
    }
    assert {"cte.indicator-events.v1", "cte.config-changes.v1", "cte.share-intents.v1"} <= receive
    for message in spec["components"]["messages"].values():
        name = message["payload"]["$ref"].removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"]
    assert ASYNCAPI_JSON.read_text(encoding="utf-8") == json_text, (
        "docs/asyncapi.json is out of date: uv run python -m tests.unit.test_observability_files --write-asyncapi"
    )
    assert load_yaml(ASYNCAPI_YAML) == spec
    assert ASYNCAPI_YAML.read_text(encoding="utf-8") == yaml_text


def main() -> None:
    parser = argparse.ArgumentParser(description="Write docs/asyncapi.json and docs/asyncapi.yaml.")
    parser.add_argument("--write-asyncapi", action="store_true", required=True)
    parser.parse_args()
    json_text, yaml_text = asyncapi_texts()
    ASYNCAPI_JSON.write_text(json_text, encoding="utf-8")
    ASYNCAPI_YAML.write_text(yaml_text, encoding="utf-8")
    print(f"wrote {ASYNCAPI_JSON} and {ASYNCAPI_YAML}")  # noqa: T201


if __name__ == "__main__":
    main()
