"""The fake Netskope tenant as a real server process, driven over HTTP(S) like a client would.

No Kafka or PostgreSQL here: only the ``cte-fake-tenant`` process.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.processes import Service, free_port

V1_TOKEN = "it-v1-token"
V2_TOKEN = "it-v2-token"
V2 = {"Netskope-Api-Token": V2_TOKEN}
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
DUPLICATE = "Duplicate request, no change in file hashes"
URLLIST = "/api/v2/policy/urllist"
HASHES = "/api/v1/updateFileHashList"


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        "CTE_FAKE_TENANT_HOST": "127.0.0.1",
        "CTE_FAKE_TENANT_PORT": str(port),
        "CTE_FAKE_TENANT_V1_TOKEN": V1_TOKEN,
        "CTE_FAKE_TENANT_V2_TOKEN": V2_TOKEN,
        "CTE_FAKE_TENANT_ALERT_PAGE_SIZE": "2",
        "CTE_FAKE_TENANT_ALERT_WAIT_TIME": "7",
        # These tests send bursts; the v2 limit has its own test on the TLS server, the export's own
        # (set with PUT /_sim/export) test_export_endpoints_allow_4_requests_per_second_with_headers.
        "CTE_FAKE_TENANT_V2_RATE_LIMIT": "0",
        "CTE_FAKE_TENANT_ALERT_RATE_LIMIT": "0",
        "CTE_LOG_LEVEL": "INFO",
    }
    url = f"http://127.0.0.1:{port}"
    service = Service("cte-fake-tenant", env, f"{url}/_sim/healthz", tmp_path_factory.mktemp("fake-tenant")).start()
    try:
        yield url
    finally:
        service.stop()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        assert c.post("/_sim/reset").status_code == 200
        yield c


def is_json(r: httpx.Response) -> bool:
    return r.headers["content-type"] == "application/json"


def create(client: httpx.Client, name: str, urls: list[str], list_type: str = "exact") -> dict[str, Any]:
    r = client.post(URLLIST, headers=V2, json={"name": name, "data": {"urls": urls, "type": list_type}})
    assert r.status_code == 201, r.text
    (created,) = r.json()
    return dict(created)


def state(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/_sim/state")
    assert r.status_code == 200
    return dict(r.json())


def push_hashes(client: httpx.Client, name: str, hashes: str, token: str = V1_TOKEN) -> httpx.Response:
    return client.post(HASHES, json={"name": name, "list": hashes, "token": token})


# ---------------------------------------------------------------------------- URL lists


def test_v2_auth_answers_401_without_and_403_with_a_wrong_token(client: httpx.Client) -> None:
    for method, path in [("GET", URLLIST), ("POST", f"{URLLIST}/deploy"), ("GET", f"{URLLIST}/1")]:
        missing = client.request(method, path)
        assert missing.status_code == 401
        assert is_json(missing)
        assert missing.json()["status"] == "error"
        wrong = client.request(method, path, headers={"Netskope-Api-Token": "nope"})
        assert wrong.status_code == 403
        assert wrong.json()["status"] == "error"
    r = client.get("/api/v2/events/dataexport/alerts/malware", params={"index": "i", "operation": "next"})
    assert r.status_code == 401


def test_url_list_lifecycle_pending_until_deploy(client: httpx.Client) -> None:
    created = create(client, "Blocklist", ["a.com", "*.b.com", "10.0.0.0/8"])
    assert created["pending"] == 1
    assert created["modify_type"] == "Created"
    assert created["data"] == {"urls": ["a.com", "*.b.com", "10.0.0.0/8"], "type": "exact", "json_version": 2}
    list_id = created["id"]

    listed = client.get(URLLIST, headers=V2, params={"field": "id,name"})
    assert listed.status_code == 200
    assert is_json(listed)
    assert listed.json() == [{"id": list_id, "name": "Blocklist"}]
    assert client.get(URLLIST, headers=V2, params={"pending": "0"}).json() == []
    assert [x["id"] for x in client.get(URLLIST, headers=V2, params={"pending": "1"}).json()] == [list_id]
    assert state(client)["urllists"]["Blocklist"]["deployed"] == []

    deployed = client.post(f"{URLLIST}/deploy", headers=V2)
    assert deployed.status_code == 200
    assert [(x["id"], x["pending"]) for x in deployed.json()] == [(list_id, 0)]

    appended = client.patch(
        f"{URLLIST}/{list_id}/append", headers=V2, json={"data": {"urls": ["c.com"], "type": "exact"}}
    )
    assert appended.status_code == 200
    assert appended.json()["data"]["urls"] == ["a.com", "*.b.com", "10.0.0.0/8", "c.com"]
    assert appended.json()["pending"] == 1
    got = client.get(f"{URLLIST}/{list_id}", headers=V2).json()
    assert (got["pending"], got["data"]["urls"][-1]) == (1, "c.com")
    deployed_view = client.get(URLLIST, headers=V2, params={"field": "id,name,data", "pending": "0"}).json()
    assert deployed_view[0]["data"]["urls"] == ["a.com", "*.b.com", "10.0.0.0/8"]
    tenant = state(client)["urllists"]["Blocklist"]
    assert tenant["deployed"] == ["a.com", "*.b.com", "10.0.0.0/8"]
    assert tenant["pending"] == ["a.com", "*.b.com", "10.0.0.0/8", "c.com"]

    replaced = client.patch(
        f"{URLLIST}/{list_id}/replace", headers=V2, json={"data": {"urls": ["x.com"], "type": "exact"}}
    )
    assert replaced.json()["data"]["urls"] == ["x.com"]
    put = client.put(
        f"{URLLIST}/{list_id}", headers=V2, json={"name": "Renamed", "data": {"urls": ["y.com"], "type": "exact"}}
    )
    assert (put.status_code, put.json()["name"], put.json()["data"]["urls"]) == (200, "Renamed", ["y.com"])
    client.post(f"{URLLIST}/deploy", headers=V2)
    assert state(client)["urllists"]["Renamed"]["deployed"] == ["y.com"]

    deleted = client.delete(f"{URLLIST}/{list_id}", headers=V2)
    assert (deleted.status_code, deleted.json()["modify_type"], deleted.json()["pending"]) == (200, "Deleted", 1)
    assert state(client)["urllists"]["Renamed"]["deleting"] is True
    assert client.post(f"{URLLIST}/deploy", headers=V2).json()[0]["modify_type"] == "Deleted"
    gone = client.get(f"{URLLIST}/{list_id}", headers=V2)
    assert gone.status_code == 404
    assert is_json(gone)
    assert state(client)["urllists"] == {}


def test_url_list_refusals(client: httpx.Client) -> None:
    create(client, "Taken", ["a.com"])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "Taken", "data": {"urls": ["b.com"], "type": "exact"}}, "already exists"),
        ({"name": "bad.name", "data": {"urls": ["b.com"], "type": "exact"}}, "not allowed"),
        ({"name": "Other", "data": {"urls": ["b.com"], "type": "glob"}}, "exact' or 'regex"),
        ({"name": "Other"}, "data is required"),
    ]
    for body, message in cases:
        r = client.post(URLLIST, headers=V2, json=body)
        assert r.status_code == 400, body
        assert is_json(r)
        assert message in r.json()["message"]
    not_json = client.post(URLLIST, headers={**V2, "content-type": "application/json"}, content=b"{not json")
    assert (not_json.status_code, not_json.json()["message"]) == (400, "request body is not valid JSON")

    entries = ["ok.com", "google.com/*", "ex*ample.com", "::1", "ftp://x.com", "1.2.3.4/40", "fine.org/p"]
    r = client.post(URLLIST, headers=V2, json={"name": "Mixed", "data": {"urls": entries, "type": "exact"}})
    assert r.status_code == 400
    message = r.json()["message"]
    assert [m[0] for m in message] == ["google.com/*", "ex*ample.com", "::1", "ftp://x.com", "1.2.3.4/40"]
    assert all(isinstance(m[1], str) and m[1] for m in message)
    list_id = client.get(URLLIST, headers=V2).json()[0]["id"]
    r = client.patch(f"{URLLIST}/{list_id}/append", headers=V2, json={"data": {"urls": ["b.com", "c.com/*"]}})
    assert r.status_code == 400
    assert r.json()["message"] == [["c.com/*", "wildcards are allowed only as a leading '*.'"]]
    assert set(state(client)["urllists"]) == {"Taken"}  # nothing applied
    assert state(client)["urllists"]["Taken"]["pending"] == ["a.com"]
    assert client.patch(f"{URLLIST}/999/append", headers=V2, json={"data": {"urls": ["b.com"]}}).status_code == 404
    assert client.get(f"{URLLIST}/abc", headers=V2).status_code == 404
    assert client.get(URLLIST, headers=V2, params={"pending": "yes"}).status_code == 400


def test_url_list_caps_7_mib_and_300k_entries(client: httpx.Client) -> None:
    # 45 bytes each as the plugin counts them: 163,200 of them pass 7 MiB (7,340,032 bytes).
    too_big = [f"h{i:08d}.example-for-cap-test.com/abcde" for i in range(163_200)]
    r = client.post(URLLIST, headers=V2, json={"name": "Big", "data": {"urls": too_big, "type": "exact"}})
    assert r.status_code == 400
    assert r.json()["message"].startswith("URL list 'Big' would hold 7344001 bytes, more than the 7340032 allowed")
    too_many = [f"a{i}.io" for i in range(300_001)]
    r = client.post(URLLIST, headers=V2, json={"name": "Many", "data": {"urls": too_many, "type": "exact"}})
    assert r.status_code == 400
    assert r.json()["message"] == "URL list 'Many' would hold 300001 entries, more than the 300000 allowed"
    assert state(client)["urllists"] == {}
    create(client, "Full", too_many[:300_000])
    assert state(client)["urllists"]["Full"]["pending_bytes"] < 7 * 1024 * 1024


# ---------------------------------------------------------------------------- file hash lists


def test_file_hash_list_v1(client: httpx.Client) -> None:
    assert client.post("/_sim/filehashlists", json={"name": "Malware"}).status_code == 201
    assert client.post("/_sim/filehashlists", json={"name": "Malware"}).status_code == 200

    for token, in_query in [(None, False), ("wrong", False), ("wrong", True)]:
        body: dict[str, Any] = {"name": "Malware", "list": MD5}
        params = {}
        if token and in_query:
            params["token"] = token
        elif token:
            body["token"] = token
        r = client.post(HASHES, json=body, params=params)
        assert r.status_code == 403
        assert is_json(r)
        assert r.json()["status"] == "error"
        assert r.json()["errorCode"]
        assert r.json()["errors"]

    unknown = push_hashes(client, "Nope", MD5)
    assert (unknown.status_code, unknown.json()["status"]) == (200, "error")
    assert unknown.json()["errors"] == ["File hash list 'Nope' does not exist"]

    invalid = push_hashes(client, "Malware", f"{MD5},xyz,{SHA256},123")
    assert invalid.json()["status"] == "error"
    assert [e.rsplit(" ", 1)[-1] for e in invalid.json()["errors"]] == ["xyz", "123"]
    assert state(client)["filehashlists"] == {"Malware": []}

    ok = push_hashes(client, "Malware", f"{MD5},{SHA256}")
    assert (ok.status_code, ok.json()) == (200, {"status": "success"})
    assert state(client)["filehashlists"] == {"Malware": [MD5, SHA256]}
    again = push_hashes(client, "Malware", f"{SHA256},{MD5}")
    assert again.json() == {"status": "error", "errorCode": "General Error", "errors": [DUPLICATE]}

    # The token in the query string (plugin <= 2.1.0) and a form body (what v1 also takes).
    by_query = client.post(HASHES, params={"token": V1_TOKEN}, json={"name": "Malware", "list": SHA256})
    assert by_query.json() == {"status": "success"}
    form = client.post(HASHES, data={"name": "Malware", "list": MD5, "token": V1_TOKEN})
    assert form.json() == {"status": "success"}
    assert state(client)["filehashlists"] == {"Malware": [MD5]}  # the whole list was replaced

    # 8 MiB as the plugin counts it (69 bytes per SHA256): 121,575 hashes are one too many.
    hashes = ",".join(f"{i:064x}" for i in range(121_575))
    capped = push_hashes(client, "Malware", hashes)
    assert capped.json()["status"] == "error"
    assert "more than the 8388608 allowed" in capped.json()["errors"][0]
    assert push_hashes(client, "Malware", hashes.rsplit(",", 1)[0]).json() == {"status": "success"}

    client.post("/_sim/filehashlists", json={"name": "Malware", "pending_change": True})
    assert "pending change" in push_hashes(client, "Malware", MD5).json()["errors"][0]


def test_v1_allows_24_requests_per_5_seconds_then_429_with_retry_after(client: httpx.Client) -> None:
    client.post("/_sim/filehashlists", json={"name": "H"})
    started = time.monotonic()
    answers = [push_hashes(client, "H", MD5 if i % 2 else SHA256) for i in range(25)]
    assert time.monotonic() - started < 5
    assert [r.status_code for r in answers[:24]] == [200] * 24
    limited = answers[24]
    assert limited.status_code == 429
    assert is_json(limited)
    assert limited.json()["status"] == "error"
    assert 1 <= int(limited.headers["Retry-After"]) <= 5
    # Another token has its own window (here: refused for the token, not for the rate).
    assert push_hashes(client, "H", MD5, token="other").status_code == 403


# ---------------------------------------------------------------------------- alert export


def export(client: httpx.Client, alert_type: str, index: str, operation: str) -> httpx.Response:
    return client.get(
        f"/api/v2/events/dataexport/alerts/{alert_type}", headers=V2, params={"index": index, "operation": operation}
    )


def test_alert_export_iterators(client: httpx.Client) -> None:
    malware = [
        {
            "timestamp": 1_700_000_000 + i,
            "severity": "High",
            "md5": MD5,
            "sha256": SHA256,
            "local_md5": MD5,
            "local_sha256": SHA256,
            "object": f"file{i}.exe",
            "malware_name": "Trojan.Test",
            "malware_type": "Trojan",
        }
        for i in range(3)
    ]
    r = client.post("/_sim/alerts", json={"type": "malware", "alerts": malware})
    assert r.json() == {"type": "malware", "enqueued": 3, "total": 3}
    sites = [
        {"timestamp": 1_700_000_010, "severity": "medium", "url": "bad.example/x", "malsite_category": ["Phishing"]}
    ]
    client.post("/_sim/alerts", json={"type": "malsite", "alerts": sites})

    first = export(client, "malware", "ce", "next")
    assert first.status_code == 200
    assert is_json(first)
    page = first.json()
    assert (page["ok"], page["wait_time"], page["timestamp_hwm"]) == (1, 0, 1_700_000_001)
    assert [a["object"] for a in page["result"]] == ["file0.exe", "file1.exe"]
    assert page["result"][0]["alert_type"] == "Malware"
    second = export(client, "malware", "ce", "next").json()
    assert ([a["object"] for a in second["result"]], second["wait_time"]) == (["file2.exe"], 7)
    assert export(client, "malware", "ce", "resend").json()["result"] == second["result"]
    assert export(client, "malware", "ce", "next").json()["result"] == []
    assert [a["object"] for a in export(client, "malware", "ce", "1700000002").json()["result"]] == ["file2.exe"]
    assert len(export(client, "malware", "ce", "head").json()["result"]) == 2
    assert export(client, "malware", "ce", "tail").json()["result"] == []

    (site,) = export(client, "malsite", "ce", "next").json()["result"]
    assert (site["alert_type"], site["url"], site["malsite_category"]) == ("malsite", "bad.example/x", ["Phishing"])
    assert export(client, "dlp", "ce", "next").status_code == 404
    assert export(client, "malware", "", "next").status_code == 400
    assert export(client, "malware", "ce", "sideways").status_code == 400
    assert client.post("/_sim/alerts", json={"type": "virus", "alerts": []}).status_code == 400
    iterators = state(client)["iterators"]
    assert iterators["malware/ce"]["position"] == 3


def test_export_endpoints_allow_4_requests_per_second_with_headers(client: httpx.Client) -> None:
    settings = client.put("/_sim/export", json={"rate_limit": 4, "rate_window": 1.0})
    assert settings.json() == {"page_size": 2, "wait_time": 7, "rate_limit": 4, "rate_window": 1.0}
    answers = [export(client, "malware", "ce", "next") for _ in range(5)]
    assert [r.status_code for r in answers[:4]] == [200] * 4
    assert [r.headers["RateLimit-Limit"] for r in answers[:4]] == ["4"] * 4
    assert [r.headers["RateLimit-Remaining"] for r in answers[:4]] == ["3", "2", "1", "0"]
    refused = answers[4]  # five within a second, unless this machine took a whole second over them
    start = client.get("/_sim/requests").json()["requests"][-5]["time"]
    if refused.status_code == 200:
        assert client.get("/_sim/requests").json()["requests"][-1]["time"] - start >= 1.0
        return
    assert refused.status_code == 429
    assert refused.json() == {"message": "API rate limit exceeded"}
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"] == "1"
    assert export(client, "malsite", "ce", "next").status_code == 200  # per endpoint
    time.sleep(1.0)
    assert export(client, "malware", "ce", "next").status_code == 200


def test_a_page_holds_10000_alerts_by_default(client: httpx.Client) -> None:
    client.put("/_sim/export", json={"page_size": 10_000}).raise_for_status()
    alerts = [{"timestamp": 1_700_000_000, "md5": f"{i:032x}"} for i in range(10_001)]
    assert client.post("/_sim/alerts", json={"type": "malware", "alerts": alerts}).status_code == 200
    first = export(client, "malware", "big", "next").json()
    assert (len(first["result"]), first["wait_time"]) == (10_000, 0)
    assert len(export(client, "malware", "big", "next").json()["result"]) == 1


def test_url_lists_take_the_documented_valid_examples_and_refuse_the_invalid_ones(client: httpx.Client) -> None:
    examples = json.loads((Path(__file__).parents[1] / "data" / "netskope_url_grammar.json").read_text())["examples"]
    valid = [e["entry"] for e in examples if e["class"] == "valid"]
    invalid = [e["entry"] for e in examples if e["class"] == "invalid"]
    assert create(client, "Documented", valid)["data"]["urls"] == valid
    r = client.post(URLLIST, headers=V2, json={"name": "Refused", "data": {"urls": valid + invalid, "type": "exact"}})
    assert r.status_code == 400
    assert [entry for entry, _reason in r.json()["message"]] == invalid


# ---------------------------------------------------------------------------- faults, log, reset


def set_faults(client: httpx.Client, **faults: Any) -> None:
    r = client.put("/_sim/faults", json=faults)
    assert r.status_code == 200, r.text


def test_injected_errors_at_rate_one(client: httpx.Client) -> None:
    set_faults(client, rate_429=1.0, retry_after=3)
    r = client.get(URLLIST, headers=V2)
    assert (r.status_code, r.headers["Retry-After"], is_json(r)) == (429, "3", True)
    v1 = push_hashes(client, "H", MD5)
    assert (v1.status_code, v1.json()["status"]) == (429, "error")
    set_faults(client, rate_500=1.0)
    r = client.post(URLLIST, headers=V2, json={"name": "L", "data": {"urls": ["a.com"], "type": "exact"}})
    assert (r.status_code, is_json(r)) == (500, True)
    set_faults(client, rate_502=1.0)
    r = client.get(URLLIST, headers=V2)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    # /_sim/ is never faulted, and the faulted requests had no effect.
    assert state(client)["urllists"] == {}
    faults = [(e["status"], e["fault"]) for e in client.get("/_sim/requests").json()["requests"]]
    assert faults == [(429, "429"), (429, "429"), (500, "500"), (502, "502")]


def test_dropped_connection_is_a_transport_error(client: httpx.Client) -> None:
    set_faults(client, rate_drop=1.0)
    with pytest.raises(httpx.TransportError):
        client.post(URLLIST, headers=V2, json={"name": "L", "data": {"urls": ["a.com"], "type": "exact"}})
    with pytest.raises(httpx.TransportError):
        client.get(URLLIST, headers=V2)
    set_faults(client)
    assert client.get(URLLIST, headers=V2).json() == []  # the dropped create did nothing
    logged = client.get("/_sim/requests").json()["requests"]
    assert [(e["status"], e["fault"]) for e in logged[:2]] == [(None, "drop"), (None, "drop")]


def test_latency_and_timeout(client: httpx.Client) -> None:
    set_faults(client, latency_ms=300)
    started = time.monotonic()
    assert client.get(URLLIST, headers=V2).status_code == 200
    assert time.monotonic() - started >= 0.3
    set_faults(client, rate_timeout=1.0, timeout_seconds=3)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post(
            URLLIST,
            headers=V2,
            json={"name": "Late", "data": {"urls": ["a.com"], "type": "exact"}},
            timeout=0.5,
        )
    assert time.monotonic() - started < 2
    # The tenant did the work; only the answer was held back.
    assert "Late" in state(client)["urllists"]


def test_seeded_faults_replay(client: httpx.Client) -> None:
    def run() -> list[int]:
        set_faults(client, rate_500=0.5, seed=42)
        return [client.get(URLLIST, headers=V2).status_code for _ in range(30)]

    first = run()
    assert set(first) == {200, 500}
    assert run() == first


def test_request_log_and_reset(client: httpx.Client) -> None:
    create(client, "L", ["a.com"])
    client.get(URLLIST, headers=V2, params={"field": "id,name"})
    client.post(HASHES, params={"token": V1_TOKEN}, json={"name": "missing", "list": MD5})
    client.get("/_sim/state")  # /_sim/ is not logged
    log = client.get("/_sim/requests").json()
    assert log["total"] == 3
    assert [(e["method"], e["path"], e["status"]) for e in log["requests"]] == [
        ("POST", URLLIST, 201),
        ("GET", URLLIST, 200),
        ("POST", HASHES, 200),
    ]
    assert log["requests"][1]["query"] == "field=id%2Cname"
    assert log["requests"][2]["query"] == "token=***"
    assert all(isinstance(e["time"], float) for e in log["requests"])
    assert [e["seq"] for e in client.get("/_sim/requests", params={"since": 2}).json()["requests"]] == [3]

    client.post("/_sim/filehashlists", json={"name": "H"})
    client.post("/_sim/alerts", json={"type": "malware", "alerts": [{"md5": MD5}]})
    set_faults(client, rate_500=1.0)
    assert client.post("/_sim/reset").json() == {"status": "reset"}
    assert state(client) == {
        "urllists": {},
        "filehashlists": {},
        "alerts": {"malware": 0, "malsite": 0},
        "iterators": {},
    }
    assert client.get("/_sim/faults").json()["rate_500"] == 0
    assert client.get("/_sim/requests").json()["total"] == 0
    assert client.get(URLLIST, headers=V2).status_code == 200


# ---------------------------------------------------------------------------- HTTPS


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-tenant.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_with_a_self_signed_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port = free_port()
    env = {
        "CTE_FAKE_TENANT_PORT": str(port),
        "CTE_FAKE_TENANT_TLS_CERTFILE": str(cert),
        "CTE_FAKE_TENANT_TLS_KEYFILE": str(key),
        "CTE_FAKE_TENANT_V2_RATE_LIMIT": "3",
        "CTE_FAKE_TENANT_V2_RATE_WINDOW_SECONDS": "10",
    }
    for name in ("CTE_FAKE_TENANT_V1_TOKEN", "CTE_FAKE_TENANT_V2_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # the documented defaults
    url = f"https://127.0.0.1:{port}"
    # Service's readiness probe uses httpx's default verification, which honours SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    service = Service("cte-fake-tenant", env, f"{url}/_sim/healthz", tmp_path).start()
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=url, verify=trusting, headers={"Netskope-Api-Token": "fake-v2-token"}) as c:
            answers = [c.get(URLLIST) for _ in range(4)]
            assert [r.status_code for r in answers] == [200, 200, 200, 429]
            assert int(answers[3].headers["Retry-After"]) >= 1
        with pytest.raises(httpx.ConnectError):
            # Public CAs only (the default context would read SSL_CERT_FILE, set above).
            httpx.get(f"{url}/_sim/healthz", verify=ssl.create_default_context(cafile=certifi.where()))
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/_sim/healthz")  # plain HTTP is not served
    finally:
        service.stop()
