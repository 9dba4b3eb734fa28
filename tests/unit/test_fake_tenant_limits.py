"""The fake tenant's limits across its URL lists and its refusals on demand, without I/O
(docs/FAKE_TENANT.md, "Tenant-wide limits, the upload limit, refusal shapes")."""

from __future__ import annotations

import pytest

from fake_tenant.domain import FileHashLists, MiB, TenantError, UrlLists

MD5 = "0cc175b9c0f1b6a831c399e269772661"


def lists(entries: int = 5, regex: int = 2) -> UrlLists:
    return UrlLists(7 * MiB, 300_000, tenant_max_entries=entries, tenant_max_regex=regex)


def create(urls: UrlLists, name: str, entries: list[str], kind: str = "exact") -> int:
    return int(urls.create({"name": name, "data": {"urls": entries, "type": kind}}, 0.0)[0]["id"])


def test_the_entry_limit_counts_every_url_list_of_the_tenant() -> None:
    urls = lists(entries=5)
    a = create(urls, "a", ["a1.example", "a2.example", "a3.example"])
    b = create(urls, "b", ["b1.example"])
    with pytest.raises(TenantError) as refused:
        urls.patch(b, "append", {"data": {"urls": ["b2.example", "b3.example"]}}, 0.0)
    assert refused.value.status == 400
    assert refused.value.message == (
        "URL list 'b' would bring the tenant's URL lists to 6 entries, more than the 5 allowed per tenant"
    )
    assert urls.snapshot()["b"]["pending"] == ["b1.example"]  # nothing applied
    urls.patch(b, "append", {"data": {"urls": ["b2.example"]}}, 0.0)  # exactly at the limit
    # A replace counts what the list will hold, not what it adds; a list being deleted counts no more.
    urls.patch(a, "replace", {"data": {"urls": ["a1.example"]}}, 0.0)
    urls.patch(b, "append", {"data": {"urls": ["b3.example", "b4.example"]}}, 0.0)
    urls.delete(a, 0.0)
    create(urls, "c", ["c1.example"])


def test_the_regex_limit_counts_regex_lists_only() -> None:
    urls = lists(entries=100, regex=2)
    create(urls, "exact", [f"e{n}.example" for n in range(10)])
    create(urls, "rx", ["a.*", "b.*"], kind="regex")
    with pytest.raises(TenantError, match="regex entries to 3, more than the 2 allowed per tenant"):
        create(urls, "rx2", ["c.*"], kind="regex")


def test_a_refused_list_refuses_every_change_until_cleared() -> None:
    urls = lists(entries=100)
    lid = create(urls, "locked", ["a.example"])
    urls.refusals = {"locked": (400, "locked in the console"), "new": (409, "busy")}
    for change in (
        lambda: urls.patch(lid, "append", {"data": {"urls": ["b.example"]}}, 0.0),
        lambda: urls.put(lid, {"name": "locked", "data": {"urls": ["b.example"], "type": "exact"}}, 0.0),
    ):
        with pytest.raises(TenantError) as refused:
            change()
        assert (refused.value.status, refused.value.message) == (400, "locked in the console")
    with pytest.raises(TenantError) as refused:
        create(urls, "new", ["x.example"])
    assert refused.value.status == 409
    urls.refusals = {}
    urls.patch(lid, "append", {"data": {"urls": ["b.example"]}}, 0.0)
    hashes = FileHashLists(8 * MiB)
    hashes.create("h")
    hashes.refusals = {"h": (400, "locked")}
    assert hashes.update("h", MD5) == ["locked"]
    hashes.refusals = {}
    assert hashes.update("h", MD5) == []
