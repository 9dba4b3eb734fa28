"""docs/BENCHMARKS.md from the JSON results under bench/results/: every figure with its target from
issue 8, its baseline and the ratio to it, and, where a target is missed, the component that sets the
limit and by how much (from the measurements, not guesses).

    uv run python bench/render.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "BENCHMARKS.md"
# Hand-written: what changed between runs and why, rendered after the figures.
NOTES = ROOT / "bench" / "notes.md"

RSS_LIMIT_MB = 300
TIMES = "\u00d7"
SERVICES = ("ingest-api", "rule-engine", "netskope-sink", "ager", "fake-tenant")


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def _x(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}{TIMES}"


def _secs(x: float | None) -> str:
    return "more than 60 s (cancelled)" if x is None else f"{x:.2f} s"


def _ms(x: float | None) -> str:
    return "—" if x is None else (f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms")


# --- figures, targets, ratios ---------------------------------------------------------------------------


def assess(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure: what was measured, the issue's target, whether it holds, the baseline."""
    b = r.get("baselines", {})
    p = r.get("pipeline", {})
    produce = _get(b, "kafka", "produce", "per_second")
    consume = _get(b, "kafka", "consume", "per_second")
    upsert = _get(b, "postgres", "upsert", "per_second")
    upsert_both = _get(b, "postgres", "upsert_with_sources", "per_second")
    append = _get(b, "tenant", "append_per_second")
    rows: list[dict[str, Any]] = []

    def row(
        key: str,
        figure: str,
        value: str,
        target: str = "",
        met: bool | None = None,
        baseline: str = "",
        ratio: float | None = None,
        note: str = "",
    ) -> None:
        rows.append(
            {"key": key, "figure": figure, "value": value, "target": target, "met": met, "baseline": baseline,
             "ratio": ratio, "note": note}
        )  # fmt: skip

    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if x and y else None

    e2e = p.get("end_to_end_per_second")
    raw_steps = ((produce, "raw produce"), (consume, "raw consume"), (upsert_both, "raw upsert, both tables"))
    slowest = min(((v, name) for v, name in raw_steps if v), default=(None, ""))
    row(
        "end_to_end",
        f"End to end: {r.get('size', 0):,} indicators POSTed until the read model holds them all "
        "and every list is flushed",
        f"not complete: {p['error']}" if p.get("error") else f"{_n(e2e)} /s ({_n(p.get('flushed_seconds'), 1)} s)",
        "≥ 20,000 /s",
        e2e is not None and e2e >= 20_000,
        f"{slowest[1]} {_n(slowest[0])} /s" if slowest[0] else "",
        ratio(e2e, slowest[0]),
    )
    http = p.get("http_per_second")
    row(
        "http_ingest",
        "HTTP ingest (batches of 1,000, all answered 201)",
        f"{_n(http)} /s",
        f"≥ 0.5 {TIMES} raw produce",
        None if not (http and produce) else http >= 0.5 * produce,
        f"raw produce {_n(produce)} /s",
        ratio(http, produce),
    )
    alone = _get(r, "ingest_alone", "http_per_second")
    if alone:
        alone_cpu = _get(r, "ingest_alone", "cpu", "cpu_seconds", "ingest-api") or 0
        row(
            "http_ingest_alone",
            "HTTP ingest alone (the same POSTs to an ingest-api of its own, its topics not consumed)",
            f"{_n(alone)} /s",
            f"≥ 0.5 {TIMES} raw produce",
            None if not produce else alone >= 0.5 * produce,
            f"raw produce {_n(produce)} /s",
            ratio(alone, produce),
            f"{alone_cpu / r['size'] * 1e6:,.1f} µs of the ingest-api's CPU per indicator"
            f" ({_n(_get(r, 'ingest_alone', 'http_seconds'), 1)} s)",
        )
    merges = p.get("merges_per_second")
    row(
        "merges",
        "Read-model merges (rule-engine, events applied)",
        f"{_n(merges)} /s",
        f"≥ 0.5 {TIMES} raw upsert",
        None if not (merges and upsert) else merges >= 0.5 * upsert,
        f"raw upsert {_n(upsert)} /s",
        ratio(merges, upsert),
        f"{_x(ratio(merges, upsert_both))} of the raw upsert into both tables ({_n(upsert_both)} /s)",
    )
    merges_alone = _get(r, "merges_alone", "merges_per_second")
    if merges_alone:
        busy = _get(r, "merges_alone", "cpu", "cpu_seconds") or {}
        events = _get(r, "merges_alone", "events") or r["size"]
        per = {k: v / events * 1e6 for k, v in busy.items() if not k.startswith("load generator")}
        row(
            "merges_alone",
            "Read-model merges alone (the same events, rule-engine members of their own, no sink, no API)",
            f"{_n(merges_alone)} /s",
            f"≥ 0.5 {TIMES} raw upsert",
            None if not upsert else merges_alone >= 0.5 * upsert,
            f"raw upsert {_n(upsert)} /s",
            ratio(merges_alone, upsert),
            f"{_x(ratio(merges_alone, upsert_both))} of the raw upsert into both tables; CPU µs per indicator: "
            + ", ".join(f"{k} {v:,.1f}" for k, v in per.items()),
        )
    ev = r.get("rule_evaluation", {})
    row(
        "rule_evaluation",
        "Rule evaluation in-process (Every Severity, 8 allow-list entries)",
        f"{_n(ev.get('per_second'))} /s",
        note=f"{_n(ev.get('with_views_per_second'))} /s with the indicator views built",
    )
    for key, label in (
        ("loaded_list", "the list the pipeline filled"),
        ("sustainable", "the list the pipeline filled"),
        ("fresh_list", "a fresh list"),
    ):
        if key not in (r.get("latency") or {}):
            continue
        lat = r["latency"][key]
        dep = lat.get("deployed") or {}
        p99 = dep.get("p99_ms")
        missing = lat.get("missing")
        at_target = lat.get("rate_per_second", 5000) >= 5000
        met = None if p99 is None or not at_target else (p99 < 2000 and not missing and lat.get("sustained", True))
        if not lat.get("sustained", True):
            missing_text = (
                f"not sustained: the API fell 2 s behind after {lat.get('offered_seconds', 0):g} s "
                f"({_n(lat.get('achieved_per_second'))} /s accepted); "
            )
        else:
            missing_text = ""
        row(
            f"latency_{key}",
            f"POST to deployed at {lat.get('rate_per_second', 5000):,}/s "
            f"for {lat.get('seconds', 20):g} s, into {label}",
            "error: " + lat["error"]
            if "error" in lat
            else missing_text
            + f"p50 {_ms(dep.get('p50_ms'))}, p99 {_ms(p99)}"
            + (f" ({missing} samples not deployed within {lat.get('missing_after_seconds'):g} s)" if missing else ""),
            "p99 < 2 s" if at_target else "(the target is at 5,000/s)",
            met,
            note=f"achieved {_n(lat.get('achieved_per_second'))} /s; {dep.get('count', 0):,} sampled values"
            + "".join(
                f"; in the {stage} p50 {_ms(st.get('p50_ms'))}, p99 {_ms(st.get('p99_ms'))}"
                for stage, st in (lat.get("stages") or {}).items()
            ),
        )
    exp = r.get("expiry") or {}
    rem = exp.get("removal") or {}
    row(
        "expiry",
        f"Expiry to removal from the deployed list ({exp.get('indicators', 300)} indicators)",
        "error: " + exp["error"] if "error" in exp else f"p50 {_ms(rem.get('p50_ms'))}, p99 {_ms(rem.get('p99_ms'))}",
        "< 10 s",
        None if rem.get("p99_ms") is None else (rem["p99_ms"] < 10_000 and not exp.get("missing")),
        note=f"max {_ms(rem.get('max_ms'))}",
    )
    for size, cap in (r.get("cap") or {}).items():
        eps = cap.get("entries_per_second")
        target_applies = int(size) >= 1_000_000
        row(
            f"cap_{size}",
            f"A list at its cap selected and pushed from {int(size):,} candidates",
            "error: " + cap["error"]
            if "error" in cap
            else f"{_n(cap.get('seconds'), 1)} s ({_n(cap.get('entries'))} entries, {_n(eps)} /s)",
            "< 10 s" if target_applies else "",
            (cap.get("seconds") is not None and cap["seconds"] < 10) if target_applies and "error" not in cap else None,
            f"raw append {_n(append)} /s",
            ratio(eps, append),
            f"{_n(cap.get('left_out'))} left out by the cap",
        )
    one = r.get("one_entry") or {}
    if one.get("entries"):
        row(
            "one_entry",
            f"A one-entry change to the filled URL list ({one['entries']:,} entries) pushed and recorded",
            f"add {_secs(max(one['add_seconds']))}, remove {_secs(max(one['remove_seconds']))} (the slowest of "
            f"{len(one['add_seconds'])} each)",
            "< 1 s",
            max(one["add_seconds"] + one["remove_seconds"]) < 1,
            note="from sending one share intent until list_state.flushed_version caught up, with the running sink "
            "(its consumer applies the intent and wakes its flusher); a removal is a replace"
            if "sent_as" in one
            else "from the change in list_members until list_state.flushed_version caught up, with the running "
            f"sink (which looks for due lists every {one.get('flush_interval_seconds', 1):g} s); a removal is a "
            "replace",
        )
    record = r.get("sink_record") or {}
    if record.get("entries"):
        row(
            "sink_record",
            f"The sink recording a push of the filled URL list ({record['entries']:,} entries)",
            f"{_secs(record.get('first_seconds'))} on the first run, {_secs(record.get('last_seconds'))} on run "
            f"{len(record.get('runs_seconds') or [])} on the same connection",
            note="netskope_sink.repository.record_push, rolled back; what each push of this list pays after the deploy",
        )
    stored = _get(r, "storage", "indicators") or 0
    for name in SERVICES:
        peak = _get(r, "rss_mb", "end", name) or _get(r, "rss_mb", "after_pipeline", name)
        after = _get(r, "rss_mb", "after_pipeline", name)
        row(
            f"rss_{name}",
            f"Peak RSS, {name}",
            f"{_n(peak)} MB",
            f"≤ {RSS_LIMIT_MB} MB" if name != "fake-tenant" else "",
            None if name == "fake-tenant" or peak is None else peak <= RSS_LIMIT_MB,
            note=f"{_n(after)} MB after the pipeline ({stored:,} stored)",
        )
    st = r.get("storage") or {}
    row(
        "storage",
        "PostgreSQL bytes per stored indicator (indicators + sources, with indexes)",
        f"{_n(st.get('bytes_per_indicator'))} B",
        note=f"{_n(st.get('bytes', 0) / 1e6 if st.get('bytes') else None, 1)} MB for {stored:,} indicators",
    )
    return rows


def _cores(cpu: dict[str, Any]) -> list[tuple[str, float, float]]:
    elapsed = cpu.get("elapsed_seconds") or 0
    return [(name, s, s / elapsed if elapsed else 0.0) for name, s in (cpu.get("cpu_seconds") or {}).items()]


def _waited(cpu: dict[str, Any]) -> float:
    return float(sum((cpu.get("run_queue_seconds") or {}).values()))


def limits(r: dict[str, Any]) -> list[str]:
    """For each missed target, the component that sets the limit and by how much, from the figures."""
    out: list[str] = []
    rows = {x["key"]: x for x in r.get("assessment") or assess(r)}
    p = r.get("pipeline", {})
    b = r.get("baselines", {})
    n = p.get("indicators") or r.get("size") or 0
    cores = _get(r, "machine", "cores") or 0
    cpu = p.get("cpu") or {}
    per_core = sorted(_cores(cpu), key=lambda x: -x[1])
    busy_total = sum(c for _, _, c in per_core)

    waits = cpu.get("run_queue_seconds") or {}
    waited = _waited(cpu)
    used = sum(s for _, s, _ in per_core)
    oversubscribed = waited > 0.5 * used
    load = r.get("load_average_before") or [0.0]
    machine_note = (
        f"The CPU was the constraint: besides the {used:.1f} s they ran, the processes' threads spent {waited:.1f} s "
        f"ready to run but waiting for a core ({waited / cpu['elapsed_seconds']:.1f} per second of the phase; "
        f"schedstat), and the {cores} cores were shared with other work on the machine (load average "
        f"{load[0]:.1f} before the run, {(r.get('load_average_after') or [0.0])[0]:.1f} after)."
        if oversubscribed
        else f"They used {busy_total:.2f} of the machine's {cores} cores and waited {waited:.1f} s in all for one."
    )

    record = r.get("sink_record") or {}
    record_note = ""
    if record.get("entries"):
        runs = record.get("runs_seconds") or []
        last = record.get("last_seconds")
        record_note = (
            f" Recording a push of the filled URL list ({record['entries']:,} entries; the sink's own "
            f"`record_push`, timed {len(runs)} times on one connection and rolled back) took "
            f"{_secs(record.get('first_seconds'))} on the first run and {_secs(last)} on the last, "
            f"{record['last_slowest_seconds']:.2f} s of it in `{record['last_slowest_statement']}`"
        )
        if last is None or (record.get("first_seconds") and last > 5 * record["first_seconds"]):
            record_note += (
                ": after five executions PostgreSQL may switch a prepared statement to a generic plan, and with "
                "the array as a parameter rather than a constant it no longer hashes it, so each held entry is "
                "compared with the array element by element (quadratic in the list's size); the sink's "
                "long-lived connections run the statement that way."
            )
        else:
            record_note += "."
    if p.get("error"):
        out.append(
            f"**End to end** did not complete: {p['error']}. The last POST was answered at "
            f"{_n(p.get('http_seconds'), 1)} s; the read model "
            + (f"was complete at {p['read_model_seconds']:.1f} s." if p.get("read_model_seconds") else "never was.")
            + record_note
        )
    if rows.get("end_to_end", {}).get("met") is False and p.get("end_to_end_per_second"):
        e2e = p["end_to_end_per_second"]
        http_s, rm_s, fl_s = p["http_seconds"], p["read_model_seconds"], p["flushed_seconds"]
        re = p.get("rule_engine", {})
        stages = [
            ("the ingest-api", p.get("http_per_second") or 0),
            ("the rule-engine", p.get("merges_per_second") or 0),
        ]
        slowest = min(stages, key=lambda x: x[1])
        members = r.get("rule_engines") or 1
        # The fraction sums the members' batch time: each member's share of the phase.
        busy = (re.get("busy_fraction") or 0) / members
        text = (
            f"**End to end** reached {e2e:,.0f} /s, {e2e / 20_000:.0%} of the 20,000 /s target (it would need "
            f"{20_000 / e2e:.1f}{TIMES} the speed). The ingest-api accepted {stages[0][1]:,.0f} /s (the last POST "
            f"answered at {http_s:.1f} s), the rule-engine applied {stages[1][1]:,.0f} /s (the read model complete at "
            f"{rm_s:.1f} s) and the sink flushed every list {fl_s - rm_s:.1f} s after that: {slowest[0]} is the "
            f"slowest stage. The rule-engine{f' (each of its {members} members)' if members > 1 else ''} was "
            f"busy {busy:.0%} of the time from its first batch to the read "
            f"model's completion ({re.get('batch_seconds', 0):.1f} s of batches, "
            f"{re.get('records_per_busy_second') or 0:,.0f} events per busy second). CPU by process: "
            + ", ".join(f"{name} {c:.2f} cores" for name, _, c in per_core if c >= 0.01)
            + f". {machine_note}"
        )
        if fl_s - rm_s > 0.25 * fl_s:
            text += record_note
        out.append(text)
    if rows.get("http_ingest", {}).get("met") is False and p.get("http_per_second"):
        produce = b["kafka"]["produce"]
        api_cpu = _get(cpu, "cpu_seconds", "ingest-api") or 0
        raw_cpu = produce.get("client_cpu_seconds") or 0
        api_per_k = api_cpu / n * 1000 if n else 0
        raw_per_k = raw_cpu / produce["events"] * 1000 if produce.get("events") else 0
        factor = api_per_k / raw_per_k if raw_per_k else 0
        ceiling = 1000 / api_per_k if api_per_k else 0
        api_cores = api_cpu / p["http_seconds"] if p.get("http_seconds") else 0
        out.append(
            f"**HTTP ingest** reached {p['http_per_second']:,.0f} /s, {rows['http_ingest']['ratio']:.2f}{TIMES} the "
            f"raw produce rate ({produce['per_second']:,.0f} /s; the target is 0.5{TIMES}). The ingest-api (all its "
            f"processes) spent {api_per_k * 1000:,.0f} ms of CPU per 1,000 indicators (HTTP, JSON parsing, validation "
            f"and canonicalisation, building, serializing and publishing the events, the 201 answer) against "
            f"{raw_per_k * 1000:,.0f} ms for the raw producer on the same events: {factor:.1f}{TIMES} as much. At that "
            f"cost a whole core would carry about {ceiling:,.0f} /s; it got {api_cores:.2f} cores while the POSTs "
            f"ran and waited {waits.get('ingest-api', 0):.1f} s for one."
            + (
                f" With the machine to itself (the same POSTs to an ingest-api of its own whose topics no consumer "
                f"reads, as the raw produce is measured) it took {rows['http_ingest_alone']['value']}, "
                f"{rows['http_ingest_alone']['ratio']:.2f}{TIMES} the raw produce."
                if rows.get("http_ingest_alone", {}).get("ratio")
                else ""
            )
        )
    if rows.get("merges", {}).get("met") is False and p.get("merges_per_second"):
        re = p.get("rule_engine", {})
        pg = b["postgres"]
        batch_k = re.get("batch_seconds", 0) / n * 1000 if n else 0
        write_k = re.get("read_model_write_seconds", 0) / n * 1000 if n else 0
        raw_k = pg["upsert"]["seconds"] / pg["upsert"]["rows"] * 1000
        both_k = pg["upsert_with_sources"]["seconds"] / pg["upsert_with_sources"]["rows"] * 1000
        re_cpu = _get(cpu, "cpu_seconds", "rule-engine") or 0
        batch_s = re.get("batch_seconds") or 0
        own = min(re_cpu / batch_s, 1.0) if batch_s else 0
        queued = min(waits.get("rule-engine", 0) / batch_s, 1.0 - own) if batch_s else 0
        text = (
            f"**Read-model merges** reached {p['merges_per_second']:,.0f} /s, {rows['merges']['ratio']:.2f}{TIMES} "
            f"the raw upsert ({pg['upsert']['per_second']:,.0f} /s; the target is 0.5{TIMES}). Per 1,000 events the "
            f"rule-engine's batches took {batch_k * 1000:,.0f} ms: {write_k * 1000:,.0f} ms loading the rows, "
            f"merging and writing both tables, {(batch_k - write_k) * 1000:,.0f} ms deciding the sharings, "
            f"recording the decisions, publishing the share intents and committing. The raw upsert takes "
            f"{raw_k * 1000:,.0f} ms per 1,000 rows into the indicators shape, {both_k * 1000:,.0f} ms into both. "
            f"Of its batch time, {own:.0%} was its own CPU ({re_cpu / n * 1e6 if n else 0:,.0f} µs per event), "
            f"{queued:.0%} waiting for a free core and {max(1 - own - queued, 0):.0%} waiting on PostgreSQL and "
            "Kafka: "
        )
        text += (
            "its Python work per event (decoding, merging, deciding, encoding) sets the pace, not the database."
            if own >= 0.5
            else "the CPU it did not get sets the pace."
            if queued >= max(own, 1 - own - queued)
            else "the round trips to PostgreSQL and Kafka set the pace."
        )
        if rows.get("merges_alone", {}).get("ratio"):
            text += (
                f" With the machine to itself (the same events merged by rule-engine members of their own into a "
                f"copy of the configured database, no sink and no API, as the raw upserts are measured) it merged "
                f"{rows['merges_alone']['value']}, {rows['merges_alone']['ratio']:.2f}{TIMES} the raw upsert."
            )
        out.append(text)
    for key in ("loaded_list", "fresh_list"):
        row = rows.get(f"latency_{key}")
        lat = _get(r, "latency", key) or {}
        if row and row.get("met") is False and "deployed" in lat:
            pushes = lat.get("sink_pushes") or {}
            achieved = lat.get("achieved_per_second") or 0
            short = (
                f" The API did not keep up with the offered {lat['rate_per_second']:,} /s: it accepted "
                f"{achieved:,.0f} /s and fell 2 s behind after {lat.get('offered_seconds', 0):g} s, where the load "
                "stopped; the values' clocks ran while their requests queued."
                if not lat.get("sustained", True)
                else ""
            )
            out.append(
                f"**POST to deployed ({'fresh list' if key == 'fresh_list' else 'the filled list'})**: p99 "
                f"{_ms(lat['deployed']['p99_ms'])} against 2 s.{short} The POSTs were answered in "
                f"{_ms(lat['post_answer']['p50_ms'])} (p50), {_ms(lat['post_answer']['p99_ms'])} (p99). "
                "After the rule-engine's batch, a value waits for the "
                f"sink's next round (it looks for due lists every {pushes.get('flush_interval_seconds', 1):g} s, then "
                f"gathers the burst for 0.2 s) and for the push itself; a value that arrives during a push waits for "
                f"the next one. The sink pushed this list {pushes.get('pushes', 0)} times, "
                f"{pushes.get('mean_seconds') or 0:.2f} s each on average (selection within the cap over every member, "
                "in PostgreSQL, the diff, the tenant's calls, the deploy, the recording of the changes)."
                + (record_note if key == "loaded_list" else "")
            )
    row = rows.get("expiry")
    exp = r.get("expiry") or {}
    if row and row.get("met") is False and "removal" in exp:
        pushes = exp.get("sink_pushes") or {}
        out.append(
            f"**Expiry to removal**: p99 {_ms(exp['removal']['p99_ms'])} against 10 s. The ager sweeps every "
            f"{exp.get('ager_sweep_interval_seconds', 1):g} s; the list was pushed {pushes.get('pushes', 0)} times, "
            f"{pushes.get('mean_seconds') or 0:.2f} s each on average."
        )
    for size, cap in (r.get("cap") or {}).items():
        row = rows.get(f"cap_{size}")
        if row and row.get("met") is False:
            br = cap.get("breakdown") or {}
            out.append(
                f"**A list at its cap from {int(size):,} candidates** took {cap['seconds']:.1f} s against 10 s "
                f"({cap['seconds'] / 10:.1f}{TIMES} the target): {br.get('until_first_tenant_call') or 0:.1f} s "
                f"until the sink's first call to the tenant (waiting for its next round, then in PostgreSQL the "
                f"selection within the cap over all {int(size):,} members and the diff against what the tenant "
                f"holds and the recorded outcomes), {br.get('tenant_calls_until_deployed') or 0:.1f} s of tenant "
                "calls until the deploy was answered, and "
                f"{br.get('recording_after_deploy') or 0:.1f} s recording the outcome after it (the outcomes of "
                f"the {cap.get('left_out', 0):,} values the cap left out, hashing each to its partition and "
                'publishing their "Unshared" tags, 1,000 values an event, and the pushed entries).'
            )
    over = [x for x in rows.values() if x["key"].startswith("rss_") and x["met"] is False]
    if over:
        after = _get(r, "rss_mb", "after_pipeline") or {}
        out.append(
            "**Peak RSS** over 300 MB: "
            + "; ".join(
                f"{x['key'][4:]} {x['value']} ({_n(after.get(x['key'][4:]))} MB after the pipeline, so the peak "
                + (
                    "came with the lists at their cap"
                    if (after.get(x["key"][4:]) or 0) <= RSS_LIMIT_MB
                    else "came during the pipeline"
                )
                + ")"
                for x in over
            )
            + "."
        )
    return out


# --- markdown ---------------------------------------------------------------------------------------------


def table(r: dict[str, Any]) -> str:
    rows = r.get("assessment") or assess(r)
    lines = ["| figure | measured | target | met | baseline | ratio to baseline |", "|---|---|---|---|---|---|"]
    for x in rows:
        met = {True: "yes", False: "**no**", None: ""}[x["met"]]
        value = x["value"] + (f"<br>{x['note']}" if x.get("note") else "")
        lines.append(f"| {x['figure']} | {value} | {x['target']} | {met} | {x['baseline']} | {_x(x['ratio'])} |")
    return "\n".join(lines)


def _machine(r: dict[str, Any]) -> str:
    m = r.get("machine")
    pg = r.get("postgresql") or {}
    if isinstance(m, str):  # the first read-path result recorded the machine as one line
        return m + (
            f"; PostgreSQL {pg['version']} with durable settings" if pg.get("version") and r.get("durable") else ""
        )
    m = m or {}
    settings = ", ".join(f"{k}={v}" for k, v in pg.items() if k != "version")
    durable = (
        "durable settings (fsync on, synchronous_commit on)"
        if r.get("durable", True)
        else f"**NOT durable** ({settings}): figures are optimistic"
    )
    pg_text = f"; PostgreSQL {pg['version']} with {durable}" if pg.get("version") else ""
    return (
        f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB memory, "
        f"{m.get('arch', '')} Linux {m.get('kernel', '')}, Python {m.get('python', '?')}{pg_text}"
    )


def _baselines(r: dict[str, Any]) -> list[str]:
    b = r.get("baselines") or {}
    k, pg, t = b.get("kafka") or {}, b.get("postgres") or {}, b.get("tenant") or {}
    lines = ["| baseline | rate | how |", "|---|---:|---|"]
    if k:
        lines.append(
            f"| Kafka raw produce | {_n(k['produce']['per_second'])} events/s | aiokafka, idempotent, acks=all, "
            f"keyed by value, {k['produce']['concurrency']} senders of 1,000-event batches, "
            f"{k['produce']['bytes_per_event']} B per event (the API's serialized IndicatorSighting), 12 partitions |"
        )
        lines.append(
            f"| Kafka raw consume | {_n(k['consume']['per_second'])} events/s | aiokafka getmany (5,000 records), "
            "no decoding, from the beginning of the same topic |"
        )
    if pg:
        lines.append(
            f"| PostgreSQL COPY | {_n(pg['copy']['per_second'])} rows/s | binary COPY of {pg['copy']['rows']:,} rows "
            "into a table like `indicators` (same columns and indexes) |"
        )
        lines.append(
            f"| PostgreSQL set-wise upsert | {_n(pg['upsert']['per_second'])} rows/s | `INSERT … SELECT FROM unnest … "
            "ON CONFLICT DO UPDATE` of the same rows in 1,000-row batches, a transaction each, into that table |"
        )
        lines.append(
            f"| PostgreSQL upsert, both tables | {_n(pg['upsert_with_sources']['per_second'])} rows/s | the same, "
            "plus the matching upsert into a table like `indicator_sources` in the same transaction |"
        )
    if t:
        lines.append(
            f"| fake tenant URL-list append | {_n(t['append_per_second'])} entries/s | {t['entries']:,} entries in "
            f"{t['append_requests']} requests (a create and large appends) |"
        )
        lines.append(
            f"| fake tenant replace | {_n(t['replace_per_second'])} entries/s | the whole list in one request |"
        )
        lines.append(
            f"| fake tenant deploy | {t['deploy_seconds'] * 1000:,.0f} ms | after the appends "
            f"({t['redeploy_seconds'] * 1000:,.0f} ms after the replace) |"
        )
    return lines


def _cpu(r: dict[str, Any]) -> list[str]:
    cpu = _get(r, "pipeline", "cpu") or {}
    if not cpu:
        return []
    waits = cpu.get("run_queue_seconds") or {}
    lines = [
        f"CPU during the pipeline phase ({cpu['elapsed_seconds']:.1f} s; {_get(r, 'machine', 'cores')} cores); "
        "the last column is the time the process's threads were ready to run but waited for a core "
        "(`/proc/<pid>/task/*/schedstat`):",
        "",
        "| process | CPU seconds | cores used | waiting for a core, s |",
        "|---|---:|---:|---:|",
    ]
    for name, s, c in sorted(_cores(cpu), key=lambda x: -x[1]):
        lines.append(f"| {name} | {s:,.1f} | {c:.2f} | {_n(waits.get(name), 1)} |")
    lines.append(
        f"| all | {sum(s for _, s, _ in _cores(cpu)):,.1f} | {sum(c for _, _, c in _cores(cpu)):.2f} | "
        f"{_waited(cpu):,.1f} |"
    )
    clients = cpu.get("postgresql_by_client") or {}
    if clients:
        per = ", ".join(f"{name} {seconds:,.1f} s" for name, seconds in sorted(clients.items(), key=lambda x: -x[1]))
        lines += ["", f"PostgreSQL's CPU by the service its backends served: {per}."]
    return lines


def _caveats(r: dict[str, Any]) -> list[str]:
    out = []
    for name, section in (
        ("latency into a fresh list", _get(r, "latency", "fresh_list")),
        ("latency into the filled list", _get(r, "latency", "loaded_list")),
        ("latency at a sustainable rate", _get(r, "latency", "sustainable")),
        ("expiry", r.get("expiry")),
        *((f"cap from {int(k):,}", v) for k, v in (r.get("cap") or {}).items()),
    ):
        if isinstance(section, dict) and "error" in section:
            out.append(f"- Not measured: {name}: {section['error']}")
    if r.get("read_path_error"):
        out.append(f"- Not measured: the read path: {r['read_path_error']}")
    if p_error := _get(r, "pipeline", "error"):
        out.append(f"- The pipeline did not complete: {p_error}")
    if failed := _get(r, "pipeline", "sink", "failed_pushes"):
        out.append(
            f"- {failed:,} of the sink's pushes failed during the pipeline and were retried after a backoff, which"
            " the lists' flush waited for (the sink's log, `.stack/logs/bench/`, says why)."
        )
    if not r.get("durable", True):
        out.append("- PostgreSQL ran without durable settings: every database figure is better than it would be.")
    load = r.get("load_average_before")
    if load and load[0] > 0.5:
        out.append(
            f"- The machine was not idle: load average {load[0]:.2f} before the run "
            f"({(r.get('load_average_after') or [0])[0]:.2f} after); other work shared its cores."
        )
    if "1000000" not in (r.get("cap") or {}):
        out.append(
            "- The list at its cap from 1,000,000 candidates is timed by `make bench` (a quick run leaves it out: "
            "add `--cap-sizes 100000,1000000`)."
        )
    if "fresh_list" not in (r.get("latency") or {}):
        out.append("- POST to deployed into a fresh list of its own is timed with `--latency-fresh`.")
    if r.get("dirty"):
        out.append("- The services' code had uncommitted changes when this ran (commit marked `+`).")
    exp = r.get("expiry") or {}
    if exp and exp.get("deployed_before_expiry") is False:
        out.append("- Expiry: the values were deployed only after their expiry time; removal was timed from expiresAt.")
    return out


def pipeline_section(r: dict[str, Any]) -> str:
    p = r.get("pipeline") or {}
    d = p.get("data") or {}
    commit = r.get("commit", "?") + ("+" if r.get("dirty") else "")
    parts = [
        f"## Pipeline: {r['size']:,} indicators",
        "",
        f"Machine: {_machine(r)}. Date {r.get('date')}, commit `{commit}`; the whole run took "
        f"{_n(r.get('total_seconds'))} s. Reproduce: `{r.get('reproduce')}`"
        + (" (`make bench`)." if r["size"] == 1_000_000 else " (`make bench-quick`)." if r["size"] == 100_000 else "."),
        "",
    ]
    if d:
        types = ", ".join(f"{k} {v:,}" for k, v in sorted(d.get("by_type", {}).items(), key=lambda kv: -kv[1]))
        parts += [
            f"Data: {d['posted']:,} indicators POSTed ({types}); {d['distinct_values']:,} distinct values, "
            f"{d['posted'] - d['distinct_values']:,} of them reported by both sources. The pipeline shares the "
            f'first source with the rule "All" to a URL list and a file hash list on the fake tenant.',
            "",
        ]
    parts += [table(r), ""]
    found = limits(r)
    if found:
        parts += ["### Where the limits are", ""]
        for paragraph in found:
            parts += [paragraph, ""]
    parts += ["### Baselines", "", *_baselines(r), ""]
    cpu = _cpu(r)
    if cpu:
        parts += ["### Where the time goes", "", *cpu, ""]
        lists = p.get("lists") or {}
        holds = p.get("tenant_holds") or {}
        if lists:
            parts += [
                "Lists after the pipeline: "
                + "; ".join(
                    f"`{k}` {v['entries']:,} entries of {v['members']:,} candidates, {v['bytes']:,} B"
                    + (f", {v['left_out']:,} left out by the cap" if v.get("left_out") else "")
                    for k, v in lists.items()
                )
                + f". The fake tenant held {holds.get('url_list_deployed', 0):,} deployed URL-list entries and "
                f"{holds.get('file_hash_list', 0):,} file hashes.",
                "",
            ]
    caveats = _caveats(r)
    if caveats:
        parts += ["### Caveats", "", *caveats, ""]
    return "\n".join(parts)


def read_path_section(r: dict[str, Any]) -> str:
    count = r["indicators"]
    commit = r.get("commit", "?") + ("+" if r.get("dirty") else "")
    lines = [
        f"## Read path: GET /api/cte/indicators/ over {count:,} indicators",
        "",
        f"`uv run python bench/read_path.py --count {count}` (also run by `bench/run.py` at its size; needs "
        "PostgreSQL on 127.0.0.1:5433, e.g. after `make up`). It bulk-loads the indicators (with 1.2 source entries "
        "each on average) into a fresh database with binary COPY, runs ANALYZE, starts the real ingest-api and times "
        "each query through HTTP, `limit=100` (the Threat IoCs page's queries, `page: ...`, 10), 7 runs each.",
        "",
        f"Machine: {_machine(r)}. Date {r.get('date')}, commit `{commit}`.",
        "",
        "| query (filters, sort) | p50 ms | max ms | rows |",
        "|---|---:|---:|---:|",
    ]
    for name, q in r["queries"].items():
        lines.append(f"| {name} | {q['p50_ms']:.1f} | {q['max_ms']:.1f} | {q['rows']:,} |")
    if console := r.get("console_iocs_page"):
        lines += [
            "",
            f"The console's Threat IoCs page as it opens (`console/src/pages/iocs.tsx`), {console['runs']} times: "
            "its page of 10 and its count (`aggregate=true`) sent at once with the console's own parameters, "
            f"`filters={console['filters']}`; the page's wall time is the slower of the two. Load average "
            f"{console['load_average_before'][0]:.1f} before, {console['load_average_after'][0]:.1f} after.",
            "",
            "| the console's request | p50 ms | max ms | rows |",
            "|---|---:|---:|---:|",
            f"| the page (sort `sources.lastSeen`, newest first, 10) | {console['page']['p50_ms']:.1f} | "
            f"{console['page']['max_ms']:.1f} | {console['page']['rows']:,} |",
            f"| the count | {console['count']['p50_ms']:.1f} | {console['count']['max_ms']:.1f} | "
            f"{console['count']['rows']:,} |",
            f"| **the page's wall time** | {console['wall']['p50_ms']:.1f} | {console['wall']['max_ms']:.1f} | |",
        ]
    size = r["database_bytes"]
    lines += [
        "",
        f"Database size with the read model and its indexes: {size / 1e9:.2f} GB ({size / count:,.0f} bytes per "
        f"indicator, source entries and indexes included); bulk load {r['load_seconds']:.2f} s.",
        "",
        "What makes these fast: the page's sort (`sources.lastSeen`, newest first) walks the `(last_seen, value)` "
        "index backwards (the value breaks ties in the same direction, so `ORDER BY ... LIMIT` walks it either way) "
        "and stops once the page is full, checking per-source conditions as `EXISTS` probes on the "
        "`(value, source)` primary key of `indicator_sources`; case-insensitive value lookups use an index on "
        "`lower(value)`, source lookups one on `lower(source)`, rare tags the GIN index on `tags`. Other sorts "
        "(`expiresAt`, hits, `firstSeen`) and counts over a whole type have no index of their own: each index "
        "costs every merge, and none of them serves the page (the index table above has the measurements).",
        "",
        "Known slow case: `$regex` on `value` is a substring match, which no B-tree can serve; it scans the table "
        "(about a second at a million indicators). A trigram index would serve it but would slow every write on the "
        "ingest hot path, so it is not created by default.",
    ]
    return "\n".join(lines)


HEADER = """# Benchmarks

Figures come from scripts under `bench/`, written as JSON under `bench/results/` and rendered here by
`bench/render.py`. Nothing here is a timed test: the test suite never asserts a speed.

## How to reproduce

```bash
make bench         # 1,000,000 indicators: uv run --frozen python bench/run.py --size 1000000
make bench-quick   # 100,000 indicators:   uv run --frozen python bench/run.py --size 100000
```

Each run starts Kafka and PostgreSQL with `deploy/stack.sh up kafka postgres --owner bench` (durable
settings: it refuses a PostgreSQL running with `fsync` or `synchronous_commit` off, such as one left by
`make test`, unless given `--allow-non-durable`, and then says so in the results) and stops them at the end
if it started them. It works in a database and a topic prefix of its own (both removed afterwards), starts
the ingest-api, rule-engine, netskope-sink, ager and the fake tenant as processes on free ports (log level
WARNING, every other setting at its default), and measures, in one run with one data set:

- **baselines**: raw Kafka produce and consume of the same serialized events, raw PostgreSQL COPY and
  set-wise upserts of the same rows, the fake tenant's raw URL-list append, replace and deploy;
- **the stages alone**, compared with those baselines as they are measured, with the machine to
  themselves (not in `--pipeline-only` runs, nor in runs made before them): HTTP ingest (the same
  POSTs, client and concurrency as the pipeline's, to an ingest-api of its own whose topics no
  consumer reads) and read-model merges (those events merged by rule-engine members of their own into
  a copy of the configured database, no sink; the members read a copy of the events, made once they have
  settled in their consumer group, and are timed from the end of the copy: runs up to `24e02c2` had them
  read the ingest-api's topics and timed them from their start, through the rebalance of a late join);
- **the pipeline**: the indicators POSTed in batches of 1,000 by an async load generator (4 concurrent
  requests) until the read model holds them all and every list is flushed (end to end, HTTP ingest,
  read-model merges); POST-to-deployed latency at a steady 5,000 per second for 60 s (`--latency-seconds`;
  runs before `0fb0dad` held it for 20 s, and each table below names its run's length) (batches of 500 every
  100 ms; 10 sampled values per batch, each timed from its batch's scheduled send until it appears in the
  sink's `list_pushed`, written once the tenant accepted the push and the deploy), into the list the
  pipeline filled (`--latency-fresh` adds a run into a fresh list of its own); expiry-to-removal latency
  (300 indicators with `expiresAt` 5 s ahead, shared to a list); rule evaluation in-process; a list at its
  cap selected and pushed from 100,000 candidates and, in `make bench`, from 1,000,000 (COPYed into
  `list_members` of a sharing of its own, the list made due in `list_state`, timed until `flushed_version`
  catches up with the running sink doing the work); peak RSS (VmHWM) of each service; PostgreSQL bytes per
  stored indicator; CPU seconds of every process, and the time it waited for a core, during the pipeline
  (PostgreSQL's also per client service, each service's backends named by `application_name`); with
  `CTE_PG_STAT_STATEMENTS=1` in the stack's environment, the pipeline's heaviest statements
  (`pg_stat_statements`);
- **the read path** at the same size (below).

`--pipeline-only` runs only the pipeline (about 2 minutes at 100,000), to compare a change's CPU per
indicator; `--rule-engines N` starts N members of the rule-engine's consumer group (2 by default: one member
waits on PostgreSQL and Kafka for about a third of its batch time, a second works meanwhile).

Service logs of the last run are in `.stack/logs/bench/`.
"""


def write(results: Path = RESULTS, doc: Path = DOC, notes: Path = NOTES) -> None:
    pipelines = sorted(
        (json.loads(f.read_text()) for f in results.glob("pipeline-*.json")), key=lambda r: -int(r.get("size", 0))
    )
    reads = sorted(
        (json.loads(f.read_text()) for f in results.glob("read_path*.json")), key=lambda r: -int(r.get("indicators", 0))
    )
    parts = [HEADER]
    if not pipelines:
        parts.append("No pipeline results yet: run `make bench-quick` or `make bench`.\n")
    for r in pipelines:
        r["assessment"] = assess(r)  # from the figures, with this renderer's wording
        parts.append(pipeline_section(r))
    if notes.exists():
        parts.append(notes.read_text())
    for r in reads[:1]:
        parts.append(read_path_section(r))
    doc.write_text("\n".join(p.rstrip() + "\n" for p in parts))


if __name__ == "__main__":
    write()
    print(f"{DOC.relative_to(ROOT)} written", file=sys.stderr)
